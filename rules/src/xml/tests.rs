//! Tests of the layout: schema against an independent validator, samples, round trips,
//! encodings, partial files and hostile files.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::limits::*;
use super::*;
use crate::{Catalogue, Mode, check};

fn cat() -> &'static Catalogue {
    static CAT: std::sync::OnceLock<Catalogue> = std::sync::OnceLock::new();
    CAT.get_or_init(|| Catalogue::builtin().expect("built-in catalogue"))
}

fn one(cat: &Catalogue, xml: &str) -> SheetRead {
    let mut sheets = read(cat, xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(sheets.len(), 1, "{sheets:#?}");
    sheets.remove(0)
}

/// A file with one rinko-002 sheet whose blocks are given as raw XML.
fn rinko(body: &str) -> String {
    let cat = cat();
    let f = cat.form("rinko-002").expect("rinko-002");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Sheets>\n<Sheet form=\"rinko-002\" formVersion=\"{}\">\n{body}\n</Sheet>\n</Sheets>\n",
        f.version
    )
}

#[test]
fn every_forms_sample_validates_against_its_schema_with_xmllint() {
    let found = std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("xmllint is missing: install Debian's libxml2-utils (CI=true demands it)");
        }
        eprintln!("NOTICE: xmllint not found; schema validation of the samples was SKIPPED");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cat = cat();
    for form in cat.forms() {
        let xsd = dir.path().join(format!("{}.xsd", form.id));
        let xml = dir.path().join(format!("{}.xml", form.id));
        std::fs::write(&xsd, schema(form)).expect("write xsd");
        std::fs::write(&xml, sample(form)).expect("write xml");
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .arg(&xml)
            .output()
            .expect("run xmllint");
        assert!(
            out.status.success(),
            "{}: {}",
            form.id,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_schema_refuses_what_the_layout_does_not_allow() {
    if std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("NOTICE: xmllint not found; skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cat = cat();
    let form = cat.form("rinko-002").expect("rinko-002");
    let xsd = dir.path().join("s.xsd");
    std::fs::write(&xsd, schema(form)).expect("write");
    let good = sample(form);
    for (what, bad) in [
        ("unknown code", good.replace("<sex>1</sex>", "<sex>9</sex>")),
        (
            "wrong form",
            good.replace("form=\"rinko-002\"", "form=\"rinko-006\""),
        ),
        (
            "item in another section",
            good.replace("<sex>", "<sexx>").replace("</sex>", "</sexx>"),
        ),
        (
            "non-canonical date",
            good.replace("1975-06-15", "1975/6/15"),
        ),
    ] {
        assert_ne!(bad, good, "{what}: the replacement did not apply");
        let xml = dir.path().join("bad.xml");
        std::fs::write(&xml, bad).expect("write");
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&xsd)
            .arg(&xml)
            .output()
            .expect("run xmllint");
        assert!(!out.status.success(), "{what} validated");
    }
}

#[test]
fn every_sample_passes_its_forms_checks_and_names_its_form() {
    let cat = cat();
    for form in cat.forms() {
        let values = sample_values(form);
        let blank: Vec<&str> = form
            .items()
            .filter(|i| !values.contains_key(&i.id))
            .map(|i| i.id.as_str())
            .collect();
        assert!(blank.len() <= 6, "{}: items left blank {blank:?}", form.id);
        let messages = check(form, &values, Mode::Complete, sample::SAMPLE_TODAY);
        assert!(messages.is_empty(), "{}: {messages:#?}", form.id);
        let text = sample(form);
        assert!(text.contains(&format!(
            "<Sheet form=\"{}\" formVersion=\"{}\"",
            form.id, form.version
        )));
    }
}

#[test]
fn export_then_import_gives_the_same_values_for_every_form() {
    let cat = cat();
    let forms = cat.forms();
    let all: Vec<BTreeMap<String, String>> = forms.iter().map(|f| sample_values(f)).collect();
    let out: Vec<SheetOut<'_>> = forms
        .iter()
        .zip(&all)
        .map(|(f, v)| SheetOut {
            form: f,
            reference: Some("r"),
            values: v,
        })
        .collect();
    let text = write(&out).expect("write");
    let back = read(cat, text.as_bytes()).expect("read");
    assert_eq!(
        back.len(),
        forms.len(),
        "several sheets, several forms, one file"
    );
    for ((form, values), sheet) in forms.iter().zip(&all).zip(&back) {
        assert_eq!(sheet.form, form.id);
        assert_eq!(sheet.form_version, form.version);
        assert_eq!(sheet.reference.as_deref(), Some("r"));
        assert!(sheet.errors.is_empty(), "{}: {:?}", form.id, sheet.errors);
        assert_eq!(&sheet.values, values, "{}", form.id);
    }
}

#[test]
fn the_writer_refuses_what_it_cannot_carry() {
    let cat = cat();
    let form = cat.form("rinko-002").expect("form");
    let mut values = BTreeMap::from([("nope.item".to_string(), "1".to_string())]);
    let out = [SheetOut {
        form,
        reference: None,
        values: &values,
    }];
    assert!(matches!(write(&out), Err(WriteError::UnknownItem { .. })));
    values.clear();
    values.insert("patient.name".into(), "a\u{1}b".into());
    let out = [SheetOut {
        form,
        reference: None,
        values: &values,
    }];
    let e = write(&out).unwrap_err();
    assert!(e.to_string().contains("U+0001"), "{e}");
}

#[test]
fn full_width_digits_and_era_dates_are_read_as_on_screen() {
    let cat = cat();
    let s = one(
        cat,
        &rinko(
            "<BasicInfo><kokuji>２</kokuji><patient><birth_date>昭和50年6月15日</birth_date>\
             <postal_code>１００－００１３</postal_code><name_kana>ﾐﾎﾝ ﾀﾛｳ</name_kana></patient>\
             <basic><onset>平成27年4月</onset></basic></BasicInfo>\
             <Institution><doctor><written_date>R7.3.15</written_date></doctor></Institution>",
        ),
    );
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.values["patient.birth_date"], "1975-06-15");
    assert_eq!(s.values["patient.postal_code"], "100-0013");
    assert_eq!(s.values["patient.name_kana"], "ミホン タロウ");
    assert_eq!(s.values["basic.onset"], "2015-04");
    assert_eq!(s.values["doctor.written_date"], "2025-03-15");
}

#[test]
fn shift_jis_and_utf8_files_with_the_same_content_read_the_same() {
    let cat = cat();
    let form = cat.form("rinko-002").expect("form");
    let mut values = sample_values(form);
    values.insert(
        "patient.address".into(),
        "東京都千代田区霞が関一丁目１番２号 髙橋方".into(),
    );
    let utf8 = write(&[SheetOut {
        form,
        reference: Some("番号1"),
        values: &values,
    }])
    .expect("write");
    let sjis_text = utf8.replacen("encoding=\"UTF-8\"", "encoding=\"Shift_JIS\"", 1);
    let (sjis, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&sjis_text);
    assert!(!unmappable, "the content is representable in CP932");
    assert_ne!(&sjis[..], utf8.as_bytes());
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), utf8.as_bytes()].concat();
    let cp932 = utf8.replacen("encoding=\"UTF-8\"", "encoding='cp932'", 1);
    let (cp932, _, _) = encoding_rs::SHIFT_JIS.encode(&cp932);
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            utf8.replacen("encoding=\"UTF-8\"", "encoding=\"UTF-16\"", 1)
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    let a = read(cat, utf8.as_bytes()).expect("utf-8");
    assert_eq!(
        a[0].values["patient.address"],
        "東京都千代田区霞が関一丁目１番２号 髙橋方"
    );
    assert_eq!(a[0].reference.as_deref(), Some("番号1"));
    for (what, bytes) in [
        ("Shift_JIS", &sjis[..]),
        ("BOM", &with_bom[..]),
        ("cp932", &cp932[..]),
        ("UTF-16 with a BOM", &utf16[..]),
    ] {
        assert_eq!(read(cat, bytes).expect(what), a, "{what}");
    }
}

#[test]
fn half_width_kana_from_a_shift_jis_file_is_read_as_full_width() {
    let cat = cat();
    let text = rinko(
        "<BasicInfo><patient><name_kana>ﾐﾎﾝ ﾀﾛｳ</name_kana><birth_date>Ｓ５０．６．１５</birth_date></patient></BasicInfo>",
    )
    .replacen("UTF-8", "Shift_JIS", 1);
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    assert!(bytes.contains(&0xD0), "ﾐ is one byte (0xD0) in Shift_JIS");
    let s = read(cat, &bytes).expect("read").remove(0);
    assert_eq!(s.values["patient.name_kana"], "ミホン タロウ");
    assert_eq!(s.values["patient.birth_date"], "1975-06-15");
}

#[test]
fn a_partial_file_is_read_and_checked_as_the_screen_would() {
    let cat = cat();
    let form = cat.form("rinko-002").expect("form");
    let s = one(
        cat,
        &rinko("<BasicInfo><patient><name>見本 太郎</name></patient></BasicInfo>"),
    );
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.values.len(), 1);
    let today = sample::SAMPLE_TODAY;
    assert!(check(form, &s.values, Mode::Draft, today).is_empty());
    let complete = check(form, &s.values, Mode::Complete, today);
    assert!(
        complete
            .iter()
            .any(|m| m.text == "生年月日を入力してください。"),
        "{complete:#?}"
    );
    // An empty element is a blank item, not a value.
    let s = one(
        cat,
        &rinko("<BasicInfo><patient><name/><sex> </sex></patient></BasicInfo>"),
    );
    assert!(s.values.is_empty() && s.errors.is_empty(), "{s:?}");
}

#[test]
fn layout_mistakes_are_reported_per_sheet_with_their_line() {
    let cat = cat();
    let body = "<BasicInfo>\n<kokuji>3</kokuji>\n<patient><nmae>x</nmae><name>a</name><name>b</name></patient>\n\
                <diagnosis><adult_onset>1</adult_onset></diagnosis>\n</BasicInfo>\n<Ventilator attr=\"1\"/>\n<Foo/>";
    let s = one(cat, &rinko(body));
    let text: Vec<String> = s.errors.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str, line: usize| {
        assert!(
            s.errors
                .iter()
                .any(|e| e.message.contains(needle) && e.line == line),
            "{needle} on line {line}: {text:#?}"
        )
    };
    has("告示番号「3」", 5);
    has("項目 <nmae> はありません", 6);
    has("2回書かれています", 6);
    has("<DiagnosticCriteria> の中に書きます", 7);
    has("属性 attr", 9);
    has("<Foo> はこのレイアウトにありません", 10);
    assert_eq!(s.values.get("patient.name").map(String::as_str), Some("a"));
    assert_eq!(
        s.errors
            .iter()
            .find(|e| e.message.contains("nmae"))
            .and_then(|e| e.item.clone()),
        Some("patient.nmae".into())
    );

    let other = "<?xml version=\"1.0\"?><Sheets><Sheet form=\"rinko-999\" formVersion=\"1\"><BasicInfo/></Sheet>\
                 <Sheet form=\"rinko-002\" formVersion=\"1999.01\"/><Sheet/></Sheets>";
    let sheets = read(cat, other.as_bytes()).expect("read");
    assert!(
        sheets[0].errors[0]
            .message
            .contains("様式 rinko-999 はこのツールの様式一覧にありません")
    );
    assert!(
        sheets[1].errors[0]
            .message
            .contains("現在の版の様式で出力し直してください")
    );
    assert!(sheets[2].errors[0].message.contains("form 属性"));
    assert_eq!(
        sheets.iter().map(|s| s.index).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn hostile_files_are_refused_with_their_reason() {
    let cat = cat();
    let huge_value = rinko(&format!(
        "<BasicInfo><patient><name>{}</name></patient></BasicInfo>",
        "あ".repeat(MAX_VALUE_CHARS + 1)
    ));
    let deep = rinko(&format!(
        "<BasicInfo><patient><name>{}{}</name></patient></BasicInfo>",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    ));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "external entity",
            b"<?xml version=\"1.0\"?><!DOCTYPE Sheets [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Sheets>&x;</Sheets>".to_vec(),
            "DOCTYPE 宣言は受け付けません",
        ),
        (
            "entity expansion",
            b"<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]><Sheets>&b;</Sheets>".to_vec(),
            "DOCTYPE",
        ),
        (
            "undeclared entity",
            rinko("<BasicInfo><patient><name>&x;</name></patient></BasicInfo>").into_bytes(),
            "未定義の実体参照 &x;",
        ),
        (
            "entity in an attribute",
            b"<Sheets><Sheet form=\"&x;\"/></Sheets>".to_vec(),
            "未定義の実体参照 &x;",
        ),
        ("huge text node", huge_value.into_bytes(), "値が長すぎます"),
        (
            "huge text outside items",
            format!("<Sheets>{}</Sheets>", "x".repeat(MAX_VALUE_CHARS * 5)).into_bytes(),
            "値が長すぎます",
        ),
        ("deep nesting", deep.into_bytes(), "入れ子が深すぎます"),
        (
            "wrong root",
            b"<?xml version=\"1.0\"?>\n<Forms><Sheet/></Forms>".to_vec(),
            "ルート要素が <Sheets> ではなく <Forms> です（2行 1列）",
        ),
        (
            "truncated",
            rinko("<BasicInfo><patient><name>見本").as_bytes()[..60].to_vec(),
            "途中で終わっています",
        ),
        (
            "truncated inside a tag",
            b"<Sheets><Sheet form=\"rin".to_vec(),
            "途中で終わっています（1行 9列、<Sheets> の中）",
        ),
        ("size cap", vec![b' '; MAX_FILE_BYTES + 1], "ファイルが大きすぎます"),
        ("empty", Vec::new(), "ファイルが空です"),
        (
            "bad bytes",
            b"<Sheets>\x82\xa0\xff</Sheets>".to_vec(),
            "UTF-8 として読めないバイトがあります（先頭から 8 バイト目）",
        ),
        (
            "bad Shift_JIS",
            b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><Sheets>\x82</Sheets>".to_vec(),
            "Shift_JIS として読めないバイト",
        ),
        (
            "unsupported encoding",
            b"<?xml version=\"1.0\" encoding=\"EUC-JP\"?><Sheets/>".to_vec(),
            "文字コード「EUC-JP」には対応していません",
        ),
        (
            "two roots",
            b"<Sheets/><Sheets/>".to_vec(),
            "ルート要素は1つだけです",
        ),
        (
            "other layout",
            b"<Sheets layout=\"2\"/>".to_vec(),
            "layout=\"2\" には対応していません",
        ),
        (
            "text at the root",
            b"<Sheets>hello</Sheets>".to_vec(),
            "要素の外に文字があります",
        ),
        (
            "many attributes",
            b"<Sheets a=\"1\" b=\"1\" c=\"1\" d=\"1\" e=\"1\" f=\"1\" g=\"1\" h=\"1\" i=\"1\"/>".to_vec(),
            "属性が多すぎます",
        ),
        (
            "mismatched end tag",
            b"<Sheets><Sheet>\n</Sheets>".to_vec(),
            "XML の構文が正しくありません（2行 1列）",
        ),
        (
            "not XML",
            "name,birth\n見本,1975-06-15\n".as_bytes().to_vec(),
            "",
        ),
    ];
    for (what, bytes, message) in cases {
        match read(cat, &bytes) {
            Ok(s) => panic!("{what}: accepted: {s:?}"),
            Err(e) => assert!(e.to_string().contains(message), "{what}: {e}"),
        }
    }
    let e = read(
        cat,
        format!(
            "<Sheets><Sheet ref=\"{}\"/></Sheets>",
            "x".repeat(MAX_VALUE_CHARS + 1)
        )
        .as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(e, ReadError::ValueTooLong { .. }), "{e}");
    let errors = rinko(&format!(
        "<BasicInfo><patient>{}</patient></BasicInfo>",
        "<x/>".repeat(MAX_FILE_ERRORS + 1)
    ));
    let e = read(cat, errors.as_bytes()).unwrap_err();
    assert_eq!(
        e,
        ReadError::TooManyErrors {
            limit: MAX_FILE_ERRORS
        }
    );
    let some = rinko(&format!(
        "<BasicInfo><patient>{}</patient></BasicInfo>",
        "<x/>".repeat(MAX_SHEET_ERRORS + 5)
    ));
    let s = one(cat, &some);
    assert_eq!(s.errors.len(), MAX_SHEET_ERRORS + 1);
    assert_eq!(
        s.errors[MAX_SHEET_ERRORS].message,
        "ほかに 5 件の誤りがあります。"
    );
    let long = "x".repeat(1_000_000);
    let e = read(cat, format!("<{long}/>").as_bytes()).unwrap_err();
    assert!(
        e.to_string().len() < 400,
        "a long name is shortened in the message"
    );
    let sheets = (0..=MAX_SHEETS).map(|_| "<Sheet/>").collect::<String>();
    let e = read(cat, format!("<Sheets>{sheets}</Sheets>").as_bytes()).unwrap_err();
    assert_eq!(e, ReadError::TooManySheets { limit: MAX_SHEETS });
}

#[test]
fn the_blocks_follow_the_seeds_six_and_cover_every_section() {
    let cat = cat();
    let form = cat.form("rinko-002").expect("form");
    let got: Vec<(Block, Vec<&str>)> = blocks(form)
        .into_iter()
        .map(|(b, s)| (b, s.iter().map(|s| s.id.as_str()).collect()))
        .collect();
    assert_eq!(
        got[0],
        (Block::Basic, vec!["application", "patient", "basic"])
    );
    assert!(got.contains(&(Block::Criteria, vec!["diagnosis"])));
    assert!(got.contains(&(Block::Ventilator, vec!["ventilator"])));
    assert!(got.contains(&(Block::Institution, vec!["doctor"])));
    for form in cat.forms() {
        let n: usize = blocks(form).iter().map(|(_, s)| s.len()).sum();
        assert_eq!(n, form.sections.len(), "{}", form.id);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read(cat(), &bytes);
    }

    #[test]
    fn layout_words_in_any_order_never_panic(words in proptest::collection::vec(0usize..26, 0..200)) {
        const WORDS: [&str; 26] = [
            "<Sheets>", "</Sheets>", "<Sheet form=\"rinko-002\" formVersion=\"2023.04\">",
            "<Sheet form=\"iken-12-04-014\">", "</Sheet>", "<BasicInfo>", "</BasicInfo>",
            "<patient>", "</patient>", "<name>", "</name>", "<birth_date>", "</birth_date>",
            "令和元年5月1日", "&amp;", "&#x0;", "&#65;", "&bogus;", "<!-- c -->", "<![CDATA[x<]]>",
            "<kokuji>", "</kokuji>", "２", "<Severity><severity>", "<?pi x?>", "\u{FEFF}",
        ];
        let text: String = words.iter().map(|&w| WORDS[w]).collect();
        let _ = read(cat(), text.as_bytes());
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
        let _ = read(cat(), &sjis);
    }

    #[test]
    fn damaged_samples_never_panic(cut in 0usize..4000, flips in proptest::collection::vec((0usize..4000, any::<u8>()), 0..8)) {
        let cat = cat();
        let form = cat.form("rinko-049").expect("form");
        let mut bytes = sample(form).into_bytes();
        for (at, b) in flips {
            if let Some(x) = bytes.get_mut(at) {
                *x = b;
            }
        }
        bytes.truncate(cut.min(bytes.len()));
        let _ = read(cat, &bytes);
    }

    #[test]
    fn any_text_value_round_trips(v in "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{fffe}\u{ffff}]{0,40}") {
        let cat = cat();
        let form = cat.form("rinko-002").expect("form");
        // Stored text is composed (`value::compose`) without invisible characters
        // (`value::without_invisible`), so that is what round-trips.
        let v = crate::value::compose(crate::value::without_invisible(v.trim()).trim()).trim().to_string();
        let values = BTreeMap::from([("patient.address".to_string(), v.clone())]);
        let text = write(&[SheetOut { form, reference: Some(&v), values: &values }]).expect("write");
        let back = read(cat, text.as_bytes()).expect("read");
        prop_assert_eq!(back[0].values.get("patient.address").cloned().unwrap_or_default(), v);
    }
}
