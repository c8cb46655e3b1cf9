//! Drawing on a page: the pen's strokes, each block, the header with the access key and its QR
//! code, and the footer. Takes laid-out blocks; decides no layout of its own.

use super::{NO_ACCESS_KEY, PrintError, PrintMeta};
use krilla::color::luma;
use krilla::geom::{Path, PathBuilder, Point, Rect};
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::TextDirection;
use nsdb_rules::FormDef;

use super::layout::*;
use super::text::*;

/// The surface of one page and the font, with the few strokes this printout needs.
pub(super) struct Pen<'s, 'p> {
    pub(super) surface: &'s mut Surface<'p>,
    pub(super) face: &'s Face,
}

pub(super) fn grey(level: u8) -> krilla::paint::Paint {
    luma::Color::new(level).into()
}

impl Pen<'_, '_> {
    /// Draws one line of text with its baseline at `baseline`.
    pub(super) fn text(&mut self, x: f32, baseline: f32, size: f32, ink: u8, text: &str) {
        if text.is_empty() {
            return;
        }
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(Fill {
            paint: grey(ink),
            ..Fill::default()
        }));
        // Each run in the font that has its characters (the fallback for 𠮷 or 葛󠄀).
        let mut x = x;
        for (font, run) in self.face.runs(text) {
            self.surface.draw_text(
                Point::from_xy(x, baseline),
                font.font.clone(),
                size,
                run,
                false,
                TextDirection::LeftToRight,
            );
            x += self.face.width(run, size);
        }
    }

    /// Draws text ending at `right`.
    pub(super) fn text_right(&mut self, right: f32, baseline: f32, size: f32, ink: u8, text: &str) {
        let w = self.face.width(text, size);
        self.text(right - w, baseline, size, ink, text);
    }

    /// Draws lines of text, the first line's box starting at `top`.
    pub(super) fn lines(&mut self, x: f32, top: f32, size: f32, ink: u8, lines: &[String]) {
        for (n, line) in lines.iter().enumerate() {
            self.text(x, baseline(top + n as f32 * LINE_H, size), size, ink, line);
        }
    }

    pub(super) fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, level: u8) {
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

    pub(super) fn stroke_path(&mut self, path: &Path, width: f32, level: u8) {
        self.surface.set_fill(None);
        self.surface.set_stroke(Some(Stroke {
            paint: grey(level),
            width,
            ..Stroke::default()
        }));
        self.surface.draw_path(path);
        self.surface.set_stroke(None);
    }

    pub(super) fn hline(&mut self, x1: f32, x2: f32, y: f32, width: f32, level: u8) {
        let mut pb = PathBuilder::new();
        pb.move_to(x1, y);
        pb.line_to(x2, y);
        if let Some(path) = pb.finish() {
            self.stroke_path(&path, width, level);
        }
    }

    pub(super) fn vline(&mut self, x: f32, y1: f32, y2: f32, width: f32, level: u8) {
        let mut pb = PathBuilder::new();
        pb.move_to(x, y1);
        pb.line_to(x, y2);
        if let Some(path) = pb.finish() {
            self.stroke_path(&path, width, level);
        }
    }

    pub(super) fn stroke_rect(&mut self, x: f32, y: f32, w: f32, h: f32, width: f32, level: u8) {
        if let Some(path) = rect_path(x, y, w, h) {
            self.stroke_path(&path, width, level);
        }
    }
}

pub(super) fn rect_path(x: f32, y: f32, w: f32, h: f32) -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.push_rect(Rect::from_xywh(x, y, w, h)?);
    pb.finish()
}

/// The baseline that centres a line of Japanese text of `size` in a line box starting at `top`.
pub(super) fn baseline(top: f32, size: f32) -> f32 {
    top + LINE_H / 2.0 + size * 0.36
}

impl Block {
    pub(super) fn draw(&self, pen: &mut Pen<'_, '_>, top: f32) {
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

pub(super) fn section_bar(pen: &mut Pen<'_, '_>, top: f32, title: &str) {
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
pub(super) struct Header {
    /// 【臨床調査個人票】 告示番号N 病名, also the document's title.
    pub(super) doc_title: String,
    pub(super) title_lines: Vec<String>,
    pub(super) title_size: f32,
    pub(super) info: String,
    pub(super) access_key: Option<String>,
    pub(super) masked: bool,
    pub(super) draft: bool,
}

/// The mark on every page of a sheet not yet registered.
pub(super) const DRAFT_MARK: &str = "下書き（未登録）";

pub(super) const KEY_LABEL_SIZE: f32 = 8.0;
pub(super) const KEY_SIZE: f32 = 12.0;
pub(super) const INFO_SIZE: f32 = 8.0;

impl Header {
    pub(super) fn new(face: &Face, form: &FormDef, meta: &PrintMeta<'_>, masked: bool) -> Header {
        let doc_title = form.heading();
        let key_text = meta.access_key.unwrap_or(NO_ACCESS_KEY);
        let key_w = face
            .width(key_text, KEY_SIZE)
            .max(face.width("アクセスキー", KEY_LABEL_SIZE));
        let title_w = PAGE_W - MARGIN_X - QR_SIZE - 14.0 - key_w - 16.0 - MARGIN_X;
        // One line if it fits at a readable size; otherwise the kind and number on the first
        // line and the disease on the second, so the disease's name is not broken.
        let kind_line = format!(
            "【{}】 {}{}",
            form.kind.label(),
            nsdb_rules::form::disease_number_label(form.kind),
            form.number()
        );
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
        let mut info = vec![format!(
            "様式版 {}",
            nsdb_ui::form_version_label(meta.form_version)
        )];
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
            draft: meta.draft,
        }
    }

    pub(super) fn draw(&self, pen: &mut Pen<'_, '_>, qr: Option<&Qr>) {
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
        if self.draft {
            let x = if self.masked {
                MARGIN_X + pen.face.width("審査会用（個人情報マスク済）", 8.5) + 18.0
            } else {
                MARGIN_X
            };
            let w = pen.face.width(DRAFT_MARK, 10.0) + 12.0;
            let b = info_b + 18.0;
            pen.stroke_rect(x, b - 12.5, w, 16.5, 1.4, INK);
            pen.text(x + 6.0, b, 10.0, INK, DRAFT_MARK);
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

pub(super) fn footer(pen: &mut Pen<'_, '_>, meta: &PrintMeta<'_>, page: usize, total: usize) {
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

/// The access key's QR code as a square of modules.
pub(super) struct Qr {
    pub(super) width: usize,
    pub(super) dark: Vec<bool>,
}

impl Qr {
    pub(super) fn encode(key: &str) -> Result<Qr, PrintError> {
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
    pub(super) fn draw(&self, pen: &mut Pen<'_, '_>, x: f32, y: f32, size: f32) {
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
