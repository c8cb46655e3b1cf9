//! 帳票出力 (M12) and the review board's masked print (M14): one sheet as an A4 PDF.
//!
//! `sheet_pdf` takes plain data (the form, the stored values and what the page says about the
//! sheet) and returns the bytes of a PDF: on every page a header with the form's title, the form
//! version and the access key as text and as a QR code, and a footer with "N / M"; in between
//! every section with each item as label and value; on the last page the designated doctor's
//! signature block. Text is set in IPAex Gothic, compiled into the binary from
//! `node/assets/fonts/` and embedded as a subset, so the Japanese in the file can be searched and
//! copied (see `docs/printing.md` for where the font comes from and its licence).
//!
//! Parts: `layout` (A4 geometry and pagination), `text` (the font and line breaking), `draw`
//! (strokes, header, footer, QR code) and `masking` (what the masked print hides).
//!
//! This module must never log, store or send a value, never read the clock, the disk or the
//! network (the caller passes the printed-at text), and in the masked variant never let the value
//! of a personal item into the file, not even into its metadata.

mod draw;
mod layout;
mod masking;
mod notice;
mod text;

use std::collections::BTreeMap;

use krilla::Document;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use nsdb_rules::FormDef;

use draw::*;
use layout::*;
pub use masking::is_personal;
pub use notice::{CredentialsNotice, credentials_notice_pdf};
use text::*;
pub use text::{DEFAULT_FALLBACK_FONT, load_fallback_font, unprintable};

/// What a masked item shows instead of its value.
pub const MASK: &str = "＊＊＊";
/// What an unanswered item shows.
pub const UNANSWERED: &str = "未記入";
/// What the header shows while the sheet has no access key yet.
pub const NO_ACCESS_KEY: &str = "アクセスキー未発行";

/// What the printout says about the sheet besides its values.
#[derive(Debug, Clone, Copy)]
pub struct PrintMeta<'a> {
    pub sheet_id: &'a str,
    /// The status as a person reads it, e.g. 「登録済」.
    pub status: &'a str,
    /// `None` until the sheet is registered: the header then says 「アクセスキー未発行」 and
    /// carries no QR code.
    pub access_key: Option<&'a str>,
    /// The form version the sheet was written on (M20).
    pub form_version: &'a str,
    /// The version of the check rules the sheet was judged with, if known.
    pub rules_version: Option<&'a str>,
    /// When the printout was made, already formatted for people (e.g. 「2026-11-25 09:30 JST」).
    pub printed_at: &'a str,
    /// 医療機関名 for the signature block; empty leaves the line to be written by hand.
    pub institution: &'a str,
    /// 指定医氏名 for the signature block; empty leaves the line to be written by hand.
    pub doctor: &'a str,
    /// Not registered yet (一時保存, 確認依頼中, 差戻し): every page carries a 下書き mark, so a
    /// draft's print is never taken for the registered sheet.
    pub draft: bool,
}

/// What the checks say about values the print cannot show: one message per item holding
/// characters the embedded font has no glyph for (an IVS or IPAmj variant, a rare ideograph),
/// naming them, so the user changes them at entry instead of finding blanks on the paper.
/// Items of `values` that `form` does not have are skipped.
pub fn unprintable_messages(
    form: &FormDef,
    values: &BTreeMap<String, String>,
) -> Vec<nsdb_rules::check::Message> {
    values
        .iter()
        .filter(|(id, _)| form.item(id).is_some())
        .filter_map(|(id, value)| {
            let missing = unprintable(value);
            (!missing.is_empty()).then(|| {
                let shown: Vec<String> = missing
                    .iter()
                    .map(|c| format!("「{c}」(U+{:04X})", *c as u32))
                    .collect();
                nsdb_rules::check::Message {
                    items: vec![id.clone()],
                    text: format!(
                        "{}: {} は帳票に印刷できない文字です（どの帳票用フォントにもありません）。通常の字体に置き換えて入力してください。",
                        form.item(id).map_or(id.as_str(), |i| i.label.as_str()),
                        shown.join("、")
                    ),
                }
            })
        })
        .collect()
}

/// Why a printout could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error(
        "帳票用フォント(IPAexゴシック)を読み込めません。node/assets/fonts/ipaexg.ttf が壊れていないか確認し、作り直してください。"
    )]
    Font,
    #[error(
        "アクセスキーをQRコードにできません({0})。アクセスキーが長すぎないか確認してください。"
    )]
    AccessKeyQr(String),
    #[error("PDFを作成できません({0})。管理者に連絡してください。")]
    Pdf(String),
}

/// The sheet as an A4 PDF. `masked` prints the review board's variant: every personal item
/// (see [`is_personal`]) shows ＊＊＊ whether answered or not.
pub fn sheet_pdf(
    form: &FormDef,
    values: &BTreeMap<String, String>,
    meta: &PrintMeta<'_>,
    masked: bool,
) -> Result<Vec<u8>, PrintError> {
    let face = Face::load()?;
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(Header::new(&face, form, meta, masked).doc_title.clone())
            .language("ja".to_string())
            .creator("nsdb".to_string()),
    );
    add_sheet(&mut document, &face, form, values, meta, masked, None)?;
    document
        .finish()
        .map_err(|e| PrintError::Pdf(e.to_string()))
}

/// One sheet of a 審査会 batch print: the form, its values, what the page says about it and
/// the machine judgment (一次判定) in one line.
#[derive(Debug, Clone, Copy)]
pub struct BatchSheet<'a> {
    pub form: &'a FormDef,
    pub values: &'a BTreeMap<String, String>,
    pub meta: PrintMeta<'a>,
    pub judgment: &'a str,
}

/// The 審査会 print (M14) of several sheets as one A4 PDF: each sheet masked as
/// [`sheet_pdf`] masks it, starting on a new page, numbered on its own, with its judgment
/// summary at the top. The document's title names no patient.
pub fn review_board_pdf(sheets: &[BatchSheet<'_>]) -> Result<Vec<u8>, PrintError> {
    let face = Face::load()?;
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(format!("審査会資料（{}件）", sheets.len()))
            .language("ja".to_string())
            .creator("nsdb".to_string()),
    );
    for sheet in sheets {
        add_sheet(
            &mut document,
            &face,
            sheet.form,
            sheet.values,
            &sheet.meta,
            true,
            Some(sheet.judgment),
        )?;
    }
    document
        .finish()
        .map_err(|e| PrintError::Pdf(e.to_string()))
}

/// Draws one sheet's pages into `document`; with `judgment`, its summary comes first.
fn add_sheet(
    document: &mut Document,
    face: &Face,
    form: &FormDef,
    values: &BTreeMap<String, String>,
    meta: &PrintMeta<'_>,
    masked: bool,
    judgment: Option<&str>,
) -> Result<(), PrintError> {
    let qr = match meta.access_key {
        Some(key) => Some(Qr::encode(key)?),
        None => None,
    };
    let header = Header::new(face, form, meta, masked);
    let mut all = Vec::new();
    if let Some(summary) = judgment {
        all.push(Block::Section {
            title: "一次判定（機械判定）".to_string(),
        });
        all.push(Block::Item {
            label: wrap(face, "一次判定", LABEL_SIZE, LABEL_TEXT_W),
            value: wrap(face, summary, VALUE_SIZE, VALUE_W),
            style: ValueStyle::Answer,
        });
    }
    all.extend(blocks(face, form, values, meta, masked));
    let pages = paginate(all);
    let total = pages.len();
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| PrintError::Pdf("用紙サイズ".to_string()))?;
    for (n, page_blocks) in pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut pen = Pen {
            surface: &mut surface,
            face,
        };
        header.draw(&mut pen, qr.as_ref());
        for placed in page_blocks {
            placed.block.draw(&mut pen, placed.top);
        }
        footer(&mut pen, meta, n + 1, total);
        surface.finish();
        page.finish();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsdb_rules::ItemDef;

    use nsdb_rules::{Catalogue, SectionDef};

    /// The embedded font lacks 𠮷 (U+20BB7) and variation sequences its cmap does not list (葛 +
    /// VS256, U+E01EF, which would print as plain 葛): without a fallback font both are named;
    /// common kanji, kana, 髙, digits, line breaks and a sequence it lists (葛 + U+E0100) are not.
    #[test]
    fn characters_the_embedded_font_cannot_print_are_named() {
        let face = Face::embedded_only().expect("font");
        let unprintable = |t: &str| text::unprintable_with(&face, t);
        assert_eq!(
            unprintable("山田 花子　ヤマダ 123\n髙橋"),
            Vec::<char>::new()
        );
        assert_eq!(unprintable("𠮷田 𠮷子"), vec!['\u{20BB7}']);
        assert_eq!(unprintable("葛\u{E0100}城"), Vec::<char>::new());
        assert_eq!(unprintable("葛\u{E01EF}城"), vec!['\u{E01EF}']);
    }

    /// A character no font has (U+30000, CJK Extension G, newer than both fonts) is named
    /// beside its item, whatever fallback is loaded.
    #[test]
    fn characters_no_font_can_print_are_named_beside_their_item() {
        let form = rinko();
        let values: BTreeMap<String, String> = [
            ("patient.name".to_string(), "\u{30000}田 花子".to_string()),
            ("patient.address".to_string(), "東京都千代田区".to_string()),
        ]
        .into();
        let messages = unprintable_messages(&form, &values);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0].items, vec!["patient.name".to_string()]);
        assert!(messages[0].text.contains("U+30000"), "{}", messages[0].text);
    }

    /// With IPAmj明朝 as the fallback (Debian's fonts-ipamj-mincho; CI installs it), 𠮷 and the
    /// variation sequence 葛󠄀 print as typed: nothing is refused, and the PDF's text layer holds
    /// them.
    #[test]
    fn names_outside_the_embedded_font_print_as_typed_with_the_fallback() {
        let path = std::path::Path::new(DEFAULT_FALLBACK_FONT);
        if !path.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{DEFAULT_FALLBACK_FONT} is needed (apt-get install fonts-ipamj-mincho)"
            );
            eprintln!("skipped: {DEFAULT_FALLBACK_FONT} is not installed");
            return;
        }
        assert!(load_fallback_font(path).expect("IPAmj明朝 loads"));
        assert_eq!(unprintable("𠮷田 𠮷子"), Vec::<char>::new());
        assert_eq!(unprintable("葛\u{E0100}城"), Vec::<char>::new());
        let form = rinko();
        let mut vals = values();
        vals.insert("patient.name".into(), "𠮷田 葛\u{E0100}子".into());
        let pdf = sheet_pdf(&form, &vals, &meta(Some(KEY)), false).expect("a PDF");
        let text = pages(&pdf).concat();
        assert!(text.contains("𠮷田"), "{text}");
        assert!(text.contains('葛'), "{text}");
    }

    const KEY: &str = "AK-7Q2M-9XRD-4KPT";
    const NAME: &str = "山田 花子";
    const INSURED: &str = "98765432";
    const INSURER: &str = "06130012";

    fn rinko() -> FormDef {
        let catalogue = Catalogue::builtin().expect("built-in catalogue");
        catalogue.form("rinko-006").expect("rinko-006").clone()
    }

    fn meta(access_key: Option<&'static str>) -> PrintMeta<'static> {
        PrintMeta {
            sheet_id: "3f1c2a9e-5b7d-4e21-9a0c-8d6f4b2e1a77",
            status: "登録済",
            access_key,
            form_version: "2023.04",
            rules_version: Some("rinko-006 2023.04"),
            printed_at: "2026-11-25 09:30 JST",
            institution: "国立難病医療センター",
            doctor: "佐藤 一郎",
            draft: false,
        }
    }

    fn values() -> BTreeMap<String, String> {
        [
            ("application.type", "1"),
            ("application.attachments", "2"),
            ("patient.insurer_no", INSURER),
            ("patient.insured_no", INSURED),
            ("patient.name", NAME),
            ("patient.name_kana", "ヤマダ ハナコ"),
            ("patient.address", "東京都千代田区霞が関1-2-2"),
            ("patient.birth_date", "1958-03-14"),
            ("patient.sex", "2"),
            ("basic.family_history", "2"),
            ("basic.onset", "2019-06"),
            ("diagnosis.a1_parkinsonism", "1"),
            ("diagnosis.category", "1"),
            ("severity.hoehn_yahr", "3"),
            ("severity.life_function", "2"),
            ("doctor.institution_name", "国立難病医療センター"),
            ("doctor.name", "佐藤 一郎"),
            ("doctor.written_date", "2026-11-20"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The text of each page, with the spacing the extractor adds taken out.
    fn pages(pdf: &[u8]) -> Vec<String> {
        pdf_extract::extract_text_from_mem_by_pages(pdf)
            .expect("the PDF's text can be extracted")
            .into_iter()
            .map(|p| p.chars().filter(|c| !c.is_whitespace()).collect())
            .collect()
    }

    fn squash(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// A form whose own section has `n` text items, each answered with `value`.
    fn long_form(n: usize, value: &str) -> (FormDef, BTreeMap<String, String>) {
        let mut form = rinko();
        let template = form.item("course.summary").expect("a text item").clone();
        let items = (1..=n)
            .map(|i| ItemDef {
                id: format!("extra.item{i:03}"),
                label: format!("追加項目{i:03}"),
                max_len: None,
                ..template.clone()
            })
            .collect::<Vec<_>>();
        let mut vals = values();
        for item in &items {
            vals.insert(item.id.clone(), format!("{value}（{}終）", item.label));
        }
        form.sections.push(SectionDef {
            id: "extra".into(),
            title: "追加の事項".into(),
            place: Default::default(),
            items,
        });
        (form, vals)
    }

    #[test]
    fn a_review_board_print_starts_each_sheet_on_a_new_page_and_names_no_patient() {
        let form = rinko();
        let vals = values();
        let mut other = values();
        other.insert("patient.name".into(), "鈴木 一子".into());
        other.insert("patient.name_kana".into(), "スズキ イチコ".into());
        let one = sheet_pdf(&form, &vals, &meta(Some(KEY)), true).expect("one sheet");
        let one_pages = pages(&one).len();
        let batch = review_board_pdf(&[
            BatchSheet {
                form: &form,
                values: &vals,
                meta: meta(Some(KEY)),
                judgment: "診断: Definite（基準を満たす）",
            },
            BatchSheet {
                form: &form,
                values: &other,
                meta: meta(Some("AK-2")),
                judgment: "診断: Probable",
            },
        ])
        .expect("a PDF");
        let pages = pages(&batch);
        assert_eq!(pages.len(), 2 * one_pages, "each sheet on its own pages");
        assert!(pages[0].contains("一次判定") && pages[0].contains("Definite"));
        assert!(
            pages[one_pages].contains("AK-2"),
            "the second sheet starts a page"
        );
        assert!(pages[one_pages].contains(&format!("1/{one_pages}")));
        let text = pages.concat();
        for personal in [NAME, "鈴木 一子", INSURED, INSURER, "ヤマダ", "スズキ"] {
            assert!(!text.contains(&squash(personal)), "{personal} is masked");
        }
    }

    #[test]
    fn rinko_006_prints_searchable_text_with_key_name_and_signature() {
        let pdf = sheet_pdf(&rinko(), &values(), &meta(Some(KEY)), false).expect("a PDF");
        assert!(pdf.starts_with(b"%PDF"), "a PDF file");
        let text = pages(&pdf).concat();
        assert!(text.contains(KEY), "the access key is printed as text");
        assert!(
            text.contains(&squash(NAME)),
            "the patient's name is printed"
        );
        assert!(text.contains("署名"), "the signature field is printed");
        assert!(text.contains("【臨床調査個人票】告示番号6パーキンソン病"));
        assert!(text.contains("記載年月日") && text.contains("指定医氏名"));
        assert!(text.contains("国立難病医療センター") && text.contains("佐藤一郎"));
        for once in ["記載年月日", "医療機関名"] {
            assert_eq!(text.matches(once).count(), 1, "{once} is printed once");
        }
    }

    #[test]
    fn code_items_show_their_labels_and_unanswered_items_say_so() {
        let pdf = sheet_pdf(&rinko(), &values(), &meta(Some(KEY)), false).expect("a PDF");
        let text = pages(&pdf).concat();
        assert!(
            text.contains("Definite"),
            "診断のカテゴリー 1 prints as its label"
        );
        assert!(
            text.contains("生活機能障害度2度"),
            "label beside its chosen value"
        );
        assert!(text.contains(UNANSWERED), "an unanswered item says 未記入");
    }

    #[test]
    fn every_page_carries_the_header_the_key_and_its_page_number() {
        let (form, vals) = long_form(60, "長い記載が続きます。");
        let pdf = sheet_pdf(&form, &vals, &meta(Some(KEY)), false).expect("a PDF");
        let pages = pages(&pdf);
        let total = pages.len();
        assert!(total >= 3, "a long sheet runs over several pages ({total})");
        for (n, page) in pages.iter().enumerate() {
            assert!(page.contains(KEY), "page {} has the access key", n + 1);
            assert!(page.contains("告示番号6"), "page {} has the title", n + 1);
            assert!(
                page.contains("様式版2023.04"),
                "page {} has the form version",
                n + 1
            );
            assert!(
                page.contains(&format!("{}/{total}", n + 1)),
                "page {} is numbered",
                n + 1
            );
        }
        let last = pages.last().expect("a last page");
        assert!(
            last.contains("署名欄"),
            "the signature block is on the last page"
        );
        assert!(!pages[0].contains("署名欄"));
    }

    #[test]
    fn a_long_sheet_has_the_pages_its_rows_need() {
        // One-line items are LINE_H + 2 ROW_PAD tall; the form's own sections and the
        // signature block come first and last. Count what the rows need and compare.
        let n = 150;
        let (form, vals) = long_form(n, "短い値");
        let pdf = sheet_pdf(&form, &vals, &meta(Some(KEY)), false).expect("a PDF");
        let face = Face::load().expect("font");
        let expected = paginate(blocks(&face, &form, &vals, &meta(Some(KEY)), false)).len();
        assert_eq!(pages(&pdf).len(), expected);
        let row = LINE_H + 2.0 * ROW_PAD;
        let per_page = (BODY_H / row).floor() as usize;
        let minimum = n.div_ceil(per_page);
        assert!(
            expected > minimum && expected <= minimum + 3,
            "{expected} pages for {n} extra rows at {per_page} a page"
        );
    }

    #[test]
    fn an_item_never_breaks_across_pages() {
        let value =
            "パーキンソン病の症状が両側に認められ、歩行時の姿勢反射障害があります。".repeat(4);
        let (form, vals) = long_form(40, &value);
        let pdf = sheet_pdf(&form, &vals, &meta(Some(KEY)), false).expect("a PDF");
        let pages = pages(&pdf);
        assert!(pages.len() >= 3);
        for i in 1..=40 {
            let label = format!("追加項目{i:03}");
            let end = format!("（{label}終）");
            let start_page = pages.iter().position(|p| p.contains(&label));
            let end_page = pages.iter().position(|p| p.contains(&end));
            assert!(start_page.is_some(), "{label} is printed");
            assert_eq!(start_page, end_page, "{label} stays on one page");
        }
    }

    #[test]
    fn an_item_taller_than_a_page_continues_instead_of_being_cut() {
        let mut vals = values();
        let long = "記載".repeat(3000) + "おわり";
        vals.insert("course.summary".into(), long);
        let pdf = sheet_pdf(&rinko(), &vals, &meta(Some(KEY)), false).expect("a PDF");
        let text = pages(&pdf).concat();
        assert!(text.contains("（続き）"));
        assert!(text.contains("おわり"), "nothing is cut off");
    }

    #[test]
    fn the_masked_print_hides_the_patient_but_keeps_the_key() {
        let pdf = sheet_pdf(&rinko(), &values(), &meta(Some(KEY)), true).expect("a PDF");
        let text = pages(&pdf).concat();
        assert!(!text.contains(&squash(NAME)), "no patient name");
        assert!(!text.contains("ヤマダ"), "no name in kana");
        assert!(!text.contains(INSURED), "no insured number");
        assert!(!text.contains(INSURER), "no insurer number");
        assert!(!text.contains("霞が関"), "no address");
        assert!(!text.contains("1958-03-14"), "no birth date");
        assert!(text.contains(KEY), "the access key stays");
        assert!(text.contains(MASK));
        assert!(
            text.contains("審査会用"),
            "the page says it is the masked print"
        );
        assert!(text.contains("Definite"), "the medical items stay");
        // Nothing personal in the raw bytes either (metadata, strings).
        let raw = String::from_utf8_lossy(&pdf);
        assert!(!raw.contains(INSURED) && !raw.contains(INSURER));
    }

    #[test]
    fn the_masked_print_masks_the_patient_where_free_text_names_them() {
        let mut vals = values();
        vals.insert(
            "course.summary".into(),
            "山田 花子さん（ヤマダハナコ）は山田家の長女。被保険者番号98765432。歩行障害あり。"
                .into(),
        );
        let masked =
            pages(&sheet_pdf(&rinko(), &vals, &meta(Some(KEY)), true).expect("PDF")).concat();
        for personal in ["山田", "花子", "ヤマダ", "ハナコ", INSURED] {
            assert!(!masked.contains(personal), "{personal} is masked");
        }
        assert!(masked.contains("歩行障害あり"), "the clinical text stays");
        assert!(masked.contains("家の長女"));
        let plain =
            pages(&sheet_pdf(&rinko(), &vals, &meta(Some(KEY)), false).expect("PDF")).concat();
        assert!(
            plain.contains("山田家の長女"),
            "the doctor's own print is as written"
        );
    }

    #[test]
    fn personal_items_are_the_patient_block_and_insurance_numbers() {
        let form = rinko();
        for section in &form.sections {
            for item in &section.items {
                let expect = section.id == "patient";
                assert_eq!(is_personal(&section.id, item), expect, "{}", item.id);
            }
        }
    }

    #[test]
    fn without_an_access_key_the_header_says_so() {
        let pdf = sheet_pdf(&rinko(), &values(), &meta(None), false).expect("a PDF");
        let text = pages(&pdf).concat();
        assert!(text.contains(NO_ACCESS_KEY));
        assert!(!text.contains(KEY));
    }

    #[test]
    fn a_key_too_long_for_a_qr_code_is_an_error() {
        let key: &'static str = "K".repeat(8000).leak();
        let err = sheet_pdf(&rinko(), &values(), &meta(Some(key)), false).unwrap_err();
        assert!(matches!(err, PrintError::AccessKeyQr(_)));
        assert!(err.to_string().contains("アクセスキー"));
    }

    /// Writes sample printouts for a look by eye: `NSDB_PRINT_SAMPLES=/tmp/p cargo test -p nsdb
    /// print::tests::samples -- --ignored`, then `pdftoppm -r 80 -png` (see docs/printing.md).
    #[test]
    #[ignore = "writes files; run by hand"]
    fn samples() {
        let dir = std::env::var("NSDB_PRINT_SAMPLES").expect("NSDB_PRINT_SAMPLES=<dir>");
        let mut vals = values();
        vals.insert(
            "course.summary".into(),
            "2019年6月頃より右手の安静時振戦で発症。2021年より左側にも症状が出現し、歩行時の小刻み歩行、すくみ足を認める。L-dopa製剤(レボドパ・カルビドパ配合剤)で症状は改善したが、wearing-off現象が出現している。\n直近6か月で転倒2回。".into(),
        );
        vals.insert("basic.family_relation".into(), "1,5".into());
        let (long, long_vals) = long_form(30, "長い記載が続きます。");
        for (name, form, vals, key, masked) in [
            ("sheet", rinko(), vals.clone(), Some(KEY), false),
            ("masked", rinko(), vals.clone(), Some(KEY), true),
            ("nokey", rinko(), vals, None, false),
            ("long", long, long_vals, Some(KEY), false),
        ] {
            let pdf = sheet_pdf(&form, &vals, &meta(key), masked).expect("a PDF");
            std::fs::write(format!("{dir}/{name}.pdf"), pdf).expect("write");
        }
    }

    #[test]
    fn wrapping_respects_width_and_kinsoku() {
        let face = Face::load().expect("font");
        let text = "パーキンソン病の症状は、安静時振戦、筋強剛、無動、姿勢反射障害である。「歩行」は小刻み。";
        let width = 10.0 * 10.0; // ten full-width characters at 10pt
        let lines = wrap(&face, text, 10.0, width);
        assert!(lines.len() >= 4);
        assert_eq!(lines.concat(), text, "nothing lost or added");
        for line in &lines {
            let first = line.chars().next().expect("no empty line");
            assert!(
                !NO_LINE_START.contains(first),
                "{line:?} starts with {first}"
            );
            let last = line.chars().last().expect("no empty line");
            assert!(!NO_LINE_END.contains(last), "{line:?} ends with {last}");
            // One hanging punctuation mark at most past the edge.
            assert!(face.width(line, 10.0) <= width + 10.0, "{line:?} too wide");
        }
    }

    #[test]
    fn wrapping_keeps_latin_words_and_line_breaks() {
        let face = Face::load().expect("font");
        let lines = wrap(&face, "L-dopa responsive\n\nDefinite", 10.0, 60.0);
        assert_eq!(lines, vec!["L-dopa", "responsive", "", "Definite"]);
        assert_eq!(wrap(&face, "", 10.0, 60.0), vec![String::new()]);
    }
}
