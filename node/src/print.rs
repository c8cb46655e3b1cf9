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
//! This module must never log, store or send a value, never read the clock, the disk or the
//! network (the caller passes the printed-at text), and in the masked variant never let the value
//! of a personal item into the file, not even into its metadata.

use std::collections::BTreeMap;

use krilla::Document;
use krilla::color::luma;
use krilla::geom::{Path, PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use nsdb_rules::{FormDef, ItemDef, ItemType};
use nsdb_ui::editor::display_value;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, GlyphId, MetadataProvider};

/// IPAex Gothic 004.01 (IPA Font License v1.0, text beside the file).
static FONT_TTF: &[u8] = include_bytes!("../assets/fonts/ipaexg.ttf");

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

/// Whether an item is personal information, masked for the review board (M14): the whole
/// patient block and every insurer or insured number wherever it stands.
pub fn is_personal(section_id: &str, item: &ItemDef) -> bool {
    section_id == "patient"
        || item.id.starts_with("patient.")
        || item.ty == ItemType::InsurerNo
        || item.id.contains("insured")
        || item.id.contains("insurer")
}

/// What of the patient could stand in free text: each personal value of the sheet as typed and
/// without its spaces, and each space-separated part of a name; two characters or more, longest
/// first, so a whole name is masked before its parts.
fn personal_terms(form: &FormDef, values: &BTreeMap<String, String>) -> Vec<String> {
    let mut terms = std::collections::BTreeSet::new();
    for section in &form.sections {
        for item in &section.items {
            let texty = matches!(
                item.ty,
                ItemType::Text
                    | ItemType::Kana
                    | ItemType::Date
                    | ItemType::Postal
                    | ItemType::InsurerNo
                    | ItemType::Digits
            );
            if !texty || !is_personal(&section.id, item) {
                continue;
            }
            let Some(v) = values.get(&item.id).map(|v| v.trim()) else {
                continue;
            };
            terms.insert(v.to_string());
            terms.insert(v.chars().filter(|c| !c.is_whitespace()).collect());
            terms.extend(v.split(char::is_whitespace).map(str::to_string));
        }
    }
    let mut terms: Vec<String> = terms
        .into_iter()
        .filter(|t| t.chars().count() >= 2)
        .collect();
    terms.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
    terms
}

/// Free text with every personal term in it replaced by ＊＊＊.
fn redact(text: &str, terms: &[String]) -> String {
    terms.iter().fold(text.to_string(), |out, t| {
        if out.contains(t.as_str()) {
            out.replace(t.as_str(), MASK)
        } else {
            out
        }
    })
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
    let qr = match meta.access_key {
        Some(key) => Some(Qr::encode(key)?),
        None => None,
    };
    let header = Header::new(&face, form, meta, masked);
    let blocks = blocks(&face, form, values, meta, masked);
    let pages = paginate(blocks);
    let total = pages.len();

    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(header.doc_title.clone())
            .language("ja".to_string())
            .creator("nsdb".to_string()),
    );
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| PrintError::Pdf("用紙サイズ".to_string()))?;
    for (n, page_blocks) in pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut pen = Pen {
            surface: &mut surface,
            face: &face,
        };
        header.draw(&mut pen, qr.as_ref());
        for placed in page_blocks {
            placed.block.draw(&mut pen, placed.top);
        }
        footer(&mut pen, meta, n + 1, total);
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|e| PrintError::Pdf(e.to_string()))
}

// ------------------------------------------------------------------------------------ geometry

/// A4 portrait in points.
const PAGE_W: f32 = 595.276;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 42.0;
const MARGIN_TOP: f32 = 34.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;

const QR_SIZE: f32 = 62.0;
/// The rule under the header.
const HEADER_RULE: f32 = MARGIN_TOP + QR_SIZE + 12.0;
const BODY_TOP: f32 = HEADER_RULE + 10.0;
/// The rule above the footer.
const FOOTER_RULE: f32 = PAGE_H - 40.0;
const BODY_BOTTOM: f32 = FOOTER_RULE - 8.0;
const BODY_H: f32 = BODY_BOTTOM - BODY_TOP;

const LABEL_W: f32 = 168.0;
const LABEL_SIZE: f32 = 9.0;
const VALUE_SIZE: f32 = 10.0;
const LINE_H: f32 = 14.0;
const ROW_PAD: f32 = 4.0;
/// Room kept right of the value column for punctuation that hangs past the line (ぶら下げ).
const HANG: f32 = 11.0;
const VALUE_X: f32 = MARGIN_X + LABEL_W + 8.0;
const VALUE_W: f32 = PAGE_W - MARGIN_X - VALUE_X - 4.0 - HANG;
const LABEL_TEXT_W: f32 = LABEL_W - 10.0;

const SECTION_GAP: f32 = 8.0;
const SECTION_BAR: f32 = 19.0;
const SECTION_SIZE: f32 = 10.5;

const SIGN_ROW: f32 = 24.0;
const SIGN_BOX: f32 = 64.0;

// Grey levels (0 black .. 255 white).
const INK: u8 = 0;
const LABEL_INK: u8 = 60;
const FAINT_INK: u8 = 120;
const RULE_INK: u8 = 170;
const BAR_FILL: u8 = 228;

// ---------------------------------------------------------------------------------------- font

/// The embedded font, for drawing (krilla) and for measuring (skrifa).
struct Face {
    font: Font,
    metrics: GlyphMetrics<'static>,
    charmap: skrifa::charmap::Charmap<'static>,
    units_per_em: f32,
}

impl Face {
    fn load() -> Result<Face, PrintError> {
        let font = Font::new(FONT_TTF.into(), 0).ok_or(PrintError::Font)?;
        let font_ref = FontRef::new(FONT_TTF).map_err(|_| PrintError::Font)?;
        let units_per_em = f32::from(
            font_ref
                .metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        if units_per_em <= 0.0 {
            return Err(PrintError::Font);
        }
        Ok(Face {
            font,
            metrics: font_ref.glyph_metrics(Size::unscaled(), LocationRef::default()),
            charmap: font_ref.charmap(),
            units_per_em,
        })
    }

    /// The advance of `text` at `size` points, glyph by glyph.
    fn width(&self, text: &str, size: f32) -> f32 {
        let units: f32 = text
            .chars()
            .map(|c| {
                let glyph = self.charmap.map(c).unwrap_or(GlyphId::NOTDEF);
                self.metrics
                    .advance_width(glyph)
                    .unwrap_or(self.units_per_em)
            })
            .sum();
        units * size / self.units_per_em
    }
}

// ------------------------------------------------------------------------------------ wrapping

/// Characters that must not begin a line (行頭禁則); they hang past the right edge instead.
const NO_LINE_START: &str = "、。，．,.・：；:;？！?!)）]］}｝」』】〕〉》”’ーぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々ゝゞヽヾ％%";
/// Characters that must not end a line (行末禁則); they move to the next line.
const NO_LINE_END: &str = "(（[［{｛「『【〔〈《“‘";

/// Splits text into lines no wider than `width` at `size` points: Japanese may break between
/// any two characters, runs of Latin letters and digits break at spaces unless a run alone is
/// wider than a line, and the usual kinsoku rules hold. Line breaks in the text are kept.
fn wrap(face: &Face, text: &str, size: f32, width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let clean: String = paragraph
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        wrap_paragraph(face, &clean, size, width, &mut lines);
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

fn wrap_paragraph(face: &Face, text: &str, size: f32, width: f32, lines: &mut Vec<String>) {
    let mut cur = String::new();
    let mut cur_w = 0.0;
    for unit in units(face, text, size, width) {
        let space = unit.chars().all(char::is_whitespace);
        if cur.is_empty() && space {
            continue;
        }
        let w = face.width(&unit, size);
        if cur_w + w <= width {
            cur.push_str(&unit);
            cur_w += w;
            continue;
        }
        let mut chars = unit.chars();
        let single = chars.next().filter(|_| chars.next().is_none());
        if let Some(c) = single
            && NO_LINE_START.contains(c)
            && !cur.is_empty()
        {
            cur.push(c);
            cur_w += w;
            continue;
        }
        let mut carry = String::new();
        if cur.chars().count() > 1
            && let Some(last) = cur.chars().last()
            && NO_LINE_END.contains(last)
        {
            cur.pop();
            carry.push(last);
        }
        lines.push(cur.trim_end().to_string());
        cur = carry;
        cur_w = face.width(&cur, size);
        if !space {
            cur.push_str(&unit);
            cur_w += w;
        }
    }
    lines.push(cur.trim_end().to_string());
}

/// Breakable units: a run of ASCII letters, digits and symbols (one word), or one other
/// character. A word wider than a whole line is split into characters.
fn units(face: &Face, text: &str, size: f32, width: f32) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        if face.width(word, size) > width {
            out.extend(word.chars().map(String::from));
        } else {
            out.push(word.clone());
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_graphic() && !NO_LINE_START.contains(c) && !NO_LINE_END.contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c.to_string());
        }
    }
    flush(&mut word, &mut out);
    out
}

// -------------------------------------------------------------------------------------- blocks

/// How a value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueStyle {
    Answer,
    Unanswered,
    Masked,
}

/// One unbreakable piece of the body.
#[derive(Debug, Clone)]
enum Block {
    Section {
        title: String,
    },
    Item {
        label: Vec<String>,
        value: Vec<String>,
        style: ValueStyle,
    },
    Signature {
        written: Option<String>,
        institution: String,
        doctor: String,
    },
}

impl Block {
    fn height(&self) -> f32 {
        match self {
            Block::Section { .. } => SECTION_GAP + SECTION_BAR,
            Block::Item { label, value, .. } => {
                label.len().max(value.len()).max(1) as f32 * LINE_H + 2.0 * ROW_PAD
            }
            Block::Signature { .. } => SECTION_GAP + SECTION_BAR + 3.0 * SIGN_ROW + SIGN_BOX + 8.0,
        }
    }
}

/// A block with where its top stands on its page.
#[derive(Debug, Clone)]
struct Placed {
    top: f32,
    block: Block,
}

/// Items the signature block prints, so the form's section leaves them out.
const SIGNED: [&str; 3] = [
    "doctor.written_date",
    "doctor.institution_name",
    "doctor.name",
];

fn blocks(
    face: &Face,
    form: &FormDef,
    values: &BTreeMap<String, String>,
    meta: &PrintMeta<'_>,
    masked: bool,
) -> Vec<Block> {
    let mut out = Vec::new();
    let terms = if masked {
        personal_terms(form, values)
    } else {
        Vec::new()
    };
    for section in &form.sections {
        out.push(Block::Section {
            title: section.title.clone(),
        });
        for item in section
            .items
            .iter()
            .filter(|i| !SIGNED.contains(&i.id.as_str()))
        {
            let stored = values.get(&item.id).map(String::as_str).unwrap_or("");
            let shown = display_value(item, stored);
            let (text, style) = if masked && is_personal(&section.id, item) {
                (MASK.to_string(), ValueStyle::Masked)
            } else if shown.trim().is_empty() {
                (UNANSWERED.to_string(), ValueStyle::Unanswered)
            } else if masked && item.ty == ItemType::Text {
                (redact(&shown, &terms), ValueStyle::Answer)
            } else {
                (shown, ValueStyle::Answer)
            };
            out.push(Block::Item {
                label: wrap(face, &item.label, LABEL_SIZE, LABEL_TEXT_W),
                value: wrap(face, &text, VALUE_SIZE, VALUE_W),
                style,
            });
        }
    }
    // What the doctor wrote on the form, else who the node knows the sheet by.
    let written_on_form = |id: &str| {
        form.item(id)
            .and_then(|item| values.get(&item.id).map(|v| display_value(item, v)))
            .filter(|v| !v.trim().is_empty())
    };
    out.push(Block::Signature {
        written: written_on_form("doctor.written_date"),
        institution: written_on_form("doctor.institution_name")
            .unwrap_or_else(|| meta.institution.to_string()),
        doctor: written_on_form("doctor.name").unwrap_or_else(|| meta.doctor.to_string()),
    });
    out
}

/// Lays blocks out on pages. An item never breaks across pages unless it is taller than a whole
/// page on its own; a section title never stands alone at the foot of a page; the signature
/// block always ends the last page.
fn paginate(blocks: Vec<Block>) -> Vec<Vec<Placed>> {
    let mut pages: Vec<Vec<Placed>> = vec![Vec::new()];
    let mut top = BODY_TOP;
    let mut iter = blocks.into_iter().peekable();
    while let Some(block) = iter.next() {
        let h = block.height();
        let keep = match (&block, iter.peek()) {
            (Block::Section { .. }, Some(next @ Block::Item { .. })) => {
                h + next.height().min(BODY_H - h)
            }
            _ => h,
        };
        let page_used = pages.last().is_some_and(|p| !p.is_empty());
        if top + keep > BODY_BOTTOM && page_used {
            pages.push(Vec::new());
            top = BODY_TOP;
        }
        if h > BODY_H
            && let Block::Item {
                label,
                value,
                style,
            } = block
        {
            // Taller than a page: continue it over as many pages as it needs.
            let per_page = (((BODY_H - 2.0 * ROW_PAD) / LINE_H).floor() as usize).max(1);
            for (n, chunk) in value.chunks(per_page).enumerate() {
                if n > 0 {
                    pages.push(Vec::new());
                    top = BODY_TOP;
                }
                let label = if n == 0 {
                    label.clone()
                } else {
                    vec![format!(
                        "{}（続き）",
                        label.first().map_or("", String::as_str)
                    )]
                };
                let piece = Block::Item {
                    label,
                    value: chunk.to_vec(),
                    style,
                };
                let ph = piece.height();
                if let Some(page) = pages.last_mut() {
                    page.push(Placed { top, block: piece });
                }
                top += ph;
            }
            continue;
        }
        if let Some(page) = pages.last_mut() {
            page.push(Placed { top, block });
        }
        top += h;
    }
    pages
}

// ------------------------------------------------------------------------------------- drawing

/// The surface of one page and the font, with the few strokes this printout needs.
struct Pen<'s, 'p> {
    surface: &'s mut Surface<'p>,
    face: &'s Face,
}

fn grey(level: u8) -> krilla::paint::Paint {
    luma::Color::new(level).into()
}

impl Pen<'_, '_> {
    /// Draws one line of text with its baseline at `baseline`.
    fn text(&mut self, x: f32, baseline: f32, size: f32, ink: u8, text: &str) {
        if text.is_empty() {
            return;
        }
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(Fill {
            paint: grey(ink),
            ..Fill::default()
        }));
        self.surface.draw_text(
            Point::from_xy(x, baseline),
            self.face.font.clone(),
            size,
            text,
            false,
            TextDirection::LeftToRight,
        );
    }

    /// Draws text ending at `right`.
    fn text_right(&mut self, right: f32, baseline: f32, size: f32, ink: u8, text: &str) {
        let w = self.face.width(text, size);
        self.text(right - w, baseline, size, ink, text);
    }

    /// Draws lines of text, the first line's box starting at `top`.
    fn lines(&mut self, x: f32, top: f32, size: f32, ink: u8, lines: &[String]) {
        for (n, line) in lines.iter().enumerate() {
            self.text(x, baseline(top + n as f32 * LINE_H, size), size, ink, line);
        }
    }

    fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, level: u8) {
        let Some(path) = rect_path(x, y, w, h) else {
            return;
        };
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(Fill {
            paint: grey(level),
            ..Fill::default()
        }));
        self.surface.draw_path(&path);
    }

    fn stroke_path(&mut self, path: &Path, width: f32, level: u8) {
        self.surface.set_fill(None);
        self.surface.set_stroke(Some(Stroke {
            paint: grey(level),
            width,
            ..Stroke::default()
        }));
        self.surface.draw_path(path);
        self.surface.set_stroke(None);
    }

    fn hline(&mut self, x1: f32, x2: f32, y: f32, width: f32, level: u8) {
        let mut pb = PathBuilder::new();
        pb.move_to(x1, y);
        pb.line_to(x2, y);
        if let Some(path) = pb.finish() {
            self.stroke_path(&path, width, level);
        }
    }

    fn vline(&mut self, x: f32, y1: f32, y2: f32, width: f32, level: u8) {
        let mut pb = PathBuilder::new();
        pb.move_to(x, y1);
        pb.line_to(x, y2);
        if let Some(path) = pb.finish() {
            self.stroke_path(&path, width, level);
        }
    }

    fn stroke_rect(&mut self, x: f32, y: f32, w: f32, h: f32, width: f32, level: u8) {
        if let Some(path) = rect_path(x, y, w, h) {
            self.stroke_path(&path, width, level);
        }
    }
}

fn rect_path(x: f32, y: f32, w: f32, h: f32) -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.push_rect(Rect::from_xywh(x, y, w, h)?);
    pb.finish()
}

/// The baseline that centres a line of Japanese text of `size` in a line box starting at `top`.
fn baseline(top: f32, size: f32) -> f32 {
    top + LINE_H / 2.0 + size * 0.36
}

impl Block {
    fn draw(&self, pen: &mut Pen<'_, '_>, top: f32) {
        match self {
            Block::Section { title } => section_bar(pen, top, title),
            Block::Item {
                label,
                value,
                style,
            } => {
                let h = self.height();
                pen.lines(MARGIN_X + 4.0, top + ROW_PAD, LABEL_SIZE, LABEL_INK, label);
                let ink = match style {
                    ValueStyle::Answer | ValueStyle::Masked => INK,
                    ValueStyle::Unanswered => FAINT_INK,
                };
                pen.lines(VALUE_X, top + ROW_PAD, VALUE_SIZE, ink, value);
                pen.vline(VALUE_X - 5.0, top, top + h, 0.4, RULE_INK);
                pen.hline(MARGIN_X, PAGE_W - MARGIN_X, top + h, 0.4, RULE_INK);
            }
            Block::Signature {
                written,
                institution,
                doctor,
            } => {
                section_bar(pen, top, "指定医記載欄");
                let mut y = top + SECTION_GAP + SECTION_BAR;
                let rows: [(&str, &str); 3] = [
                    (
                        "記載年月日",
                        written.as_deref().unwrap_or("　　　　年　　月　　日"),
                    ),
                    ("医療機関名", institution.as_str()),
                    ("指定医氏名", doctor.as_str()),
                ];
                for (label, value) in rows {
                    let mid = y + (SIGN_ROW - LINE_H) / 2.0;
                    pen.text(
                        MARGIN_X + 4.0,
                        baseline(mid, LABEL_SIZE),
                        LABEL_SIZE,
                        LABEL_INK,
                        label,
                    );
                    pen.text(VALUE_X, baseline(mid, VALUE_SIZE), VALUE_SIZE, INK, value);
                    pen.vline(VALUE_X - 5.0, y, y + SIGN_ROW, 0.4, RULE_INK);
                    pen.hline(MARGIN_X, PAGE_W - MARGIN_X, y + SIGN_ROW, 0.4, RULE_INK);
                    y += SIGN_ROW;
                }
                let mid = y + (SIGN_BOX - LINE_H) / 2.0;
                pen.text(
                    MARGIN_X + 4.0,
                    baseline(mid, LABEL_SIZE),
                    LABEL_SIZE,
                    LABEL_INK,
                    "署名欄",
                );
                let box_y = y + 6.0;
                let box_h = SIGN_BOX - 12.0;
                pen.stroke_rect(
                    VALUE_X,
                    box_y,
                    PAGE_W - MARGIN_X - VALUE_X - 4.0,
                    box_h,
                    0.9,
                    INK,
                );
                pen.text_right(
                    PAGE_W - MARGIN_X - 8.0,
                    box_y + box_h - 5.0,
                    7.0,
                    FAINT_INK,
                    "指定医 自署",
                );
                pen.hline(MARGIN_X, PAGE_W - MARGIN_X, y + SIGN_BOX, 0.4, RULE_INK);
            }
        }
    }
}

fn section_bar(pen: &mut Pen<'_, '_>, top: f32, title: &str) {
    let y = top + SECTION_GAP;
    pen.fill_rect(MARGIN_X, y, CONTENT_W, SECTION_BAR, BAR_FILL);
    pen.hline(MARGIN_X, PAGE_W - MARGIN_X, y, 0.8, INK);
    let line_top = y + (SECTION_BAR - LINE_H) / 2.0;
    pen.text(
        MARGIN_X + 6.0,
        baseline(line_top, SECTION_SIZE),
        SECTION_SIZE,
        INK,
        title,
    );
}

/// The header of every page, laid out once.
struct Header {
    /// 【臨床調査個人票】 告示番号N 病名, also the document's title.
    doc_title: String,
    title_lines: Vec<String>,
    title_size: f32,
    info: String,
    access_key: Option<String>,
    masked: bool,
}

const KEY_LABEL_SIZE: f32 = 8.0;
const KEY_SIZE: f32 = 12.0;
const INFO_SIZE: f32 = 8.0;

impl Header {
    fn new(face: &Face, form: &FormDef, meta: &PrintMeta<'_>, masked: bool) -> Header {
        let doc_title = format!(
            "【{}】 告示番号{} {}",
            form.kind.label(),
            form.kokuji,
            form.disease
        );
        let key_text = meta.access_key.unwrap_or(NO_ACCESS_KEY);
        let key_w = face
            .width(key_text, KEY_SIZE)
            .max(face.width("アクセスキー", KEY_LABEL_SIZE));
        let title_w = PAGE_W - MARGIN_X - QR_SIZE - 14.0 - key_w - 16.0 - MARGIN_X;
        // One line if it fits at a readable size; otherwise the kind and number on the first
        // line and the disease on the second, so the disease's name is not broken.
        let kind_line = format!("【{}】 告示番号{}", form.kind.label(), form.kokuji);
        let mut title_size = 15.0;
        let mut title_lines = vec![doc_title.clone()];
        let one_line = [15.0, 14.0, 13.0]
            .into_iter()
            .find(|&size| face.width(&doc_title, size) <= title_w);
        match one_line {
            Some(size) => title_size = size,
            None => loop {
                let disease = wrap(face, &form.disease, title_size, title_w);
                title_lines = std::iter::once(kind_line.clone()).chain(disease).collect();
                if title_lines.len() <= 2 || title_size <= 9.0 {
                    break;
                }
                title_size -= 1.0;
            },
        }
        title_lines.truncate(2);
        let mut info = vec![format!("様式版 {}", meta.form_version)];
        if let Some(r) = meta.rules_version {
            info.push(format!("判定規則 {r}"));
        }
        info.push(format!("ステータス {}", meta.status));
        Header {
            doc_title,
            title_lines,
            title_size,
            info: info.join("　"),
            access_key: meta.access_key.map(str::to_string),
            masked,
        }
    }

    fn draw(&self, pen: &mut Pen<'_, '_>, qr: Option<&Qr>) {
        let title_lh = self.title_size * 1.3;
        for (n, line) in self.title_lines.iter().enumerate() {
            let b = MARGIN_TOP + self.title_size + n as f32 * title_lh;
            pen.text(MARGIN_X, b, self.title_size, INK, line);
        }
        // The info line runs up to the QR code, below the access key's text.
        let info_b = MARGIN_TOP + 52.0;
        let info_w = PAGE_W - MARGIN_X - QR_SIZE - 12.0 - MARGIN_X;
        let info_size = if pen.face.width(&self.info, INFO_SIZE) <= info_w {
            INFO_SIZE
        } else {
            INFO_SIZE * info_w / pen.face.width(&self.info, INFO_SIZE)
        };
        pen.text(MARGIN_X, info_b, info_size, LABEL_INK, &self.info);
        if self.masked {
            let label = "審査会用（個人情報マスク済）";
            let w = pen.face.width(label, 8.5) + 10.0;
            let b = info_b + 17.0;
            pen.stroke_rect(MARGIN_X, b - 11.0, w, 14.5, 0.9, INK);
            pen.text(MARGIN_X + 5.0, b, 8.5, INK, label);
        }

        let qr_x = PAGE_W - MARGIN_X - QR_SIZE;
        let key_right = qr_x - 14.0;
        match (&self.access_key, qr) {
            (Some(key), Some(qr)) => {
                pen.text_right(
                    key_right,
                    MARGIN_TOP + 22.0,
                    KEY_LABEL_SIZE,
                    LABEL_INK,
                    "アクセスキー",
                );
                pen.text_right(key_right, MARGIN_TOP + 40.0, KEY_SIZE, INK, key);
                qr.draw(pen, qr_x, MARGIN_TOP, QR_SIZE);
            }
            _ => {
                pen.text_right(
                    PAGE_W - MARGIN_X,
                    MARGIN_TOP + 32.0,
                    10.0,
                    INK,
                    NO_ACCESS_KEY,
                );
            }
        }
        pen.hline(MARGIN_X, PAGE_W - MARGIN_X, HEADER_RULE, 1.2, INK);
    }
}

fn footer(pen: &mut Pen<'_, '_>, meta: &PrintMeta<'_>, page: usize, total: usize) {
    pen.hline(MARGIN_X, PAGE_W - MARGIN_X, FOOTER_RULE, 0.6, INK);
    let b = FOOTER_RULE + 16.0;
    pen.text(
        MARGIN_X,
        b,
        8.0,
        LABEL_INK,
        &format!("出力日時 {}", meta.printed_at),
    );
    let number = format!("{page} / {total}");
    let w = pen.face.width(&number, 9.0);
    pen.text((PAGE_W - w) / 2.0, b, 9.0, INK, &number);
    pen.text_right(
        PAGE_W - MARGIN_X,
        b,
        8.0,
        LABEL_INK,
        &format!("帳票ID {}", meta.sheet_id),
    );
}

// ------------------------------------------------------------------------------------- QR code

/// The access key's QR code as a square of modules.
struct Qr {
    width: usize,
    dark: Vec<bool>,
}

impl Qr {
    fn encode(key: &str) -> Result<Qr, PrintError> {
        let code = qrcode::QrCode::with_error_correction_level(key.as_bytes(), qrcode::EcLevel::M)
            .map_err(|e| PrintError::AccessKeyQr(e.to_string()))?;
        Ok(Qr {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect(),
        })
    }

    /// Draws the code as vector squares (runs of dark modules merged per row).
    fn draw(&self, pen: &mut Pen<'_, '_>, x: f32, y: f32, size: f32) {
        if self.width == 0 {
            return;
        }
        let m = size / self.width as f32;
        let mut pb = PathBuilder::new();
        for (row, cells) in self.dark.chunks(self.width).enumerate() {
            let mut col = 0;
            while col < cells.len() {
                if !cells[col] {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < cells.len() && cells[col] {
                    col += 1;
                }
                if let Some(r) = Rect::from_xywh(
                    x + start as f32 * m,
                    y + row as f32 * m,
                    (col - start) as f32 * m,
                    m,
                ) {
                    pb.push_rect(r);
                }
            }
        }
        if let Some(path) = pb.finish() {
            pen.surface.set_stroke(None);
            pen.surface.set_fill(Some(Fill::default()));
            pen.surface.draw_path(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use nsdb_rules::{Catalogue, SectionDef};

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
