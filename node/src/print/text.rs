//! The embedded font (IPAex Gothic) and Japanese line breaking: measuring text and wrapping it
//! to a width with the kinsoku rules, and which characters the font cannot print. Never draws.

use super::PrintError;
use krilla::text::Font;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, GlyphId, MetadataProvider};

/// IPAex Gothic 004.01 (IPA Font License v1.0, text beside the file).
pub(super) static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/ipaexg.ttf");

/// The embedded font, for drawing (krilla) and for measuring (skrifa).
pub(super) struct Face {
    pub(super) font: Font,
    pub(super) metrics: GlyphMetrics<'static>,
    pub(super) charmap: skrifa::charmap::Charmap<'static>,
    pub(super) units_per_em: f32,
}

impl Face {
    pub(super) fn load() -> Result<Face, PrintError> {
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
    pub(super) fn width(&self, text: &str, size: f32) -> f32 {
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

/// The characters of `text` the embedded font has no glyph for, each once, in order: they
/// would print as blanks (a variation selector of an IVS, e.g. 葛󠄀, as the base form only).
/// Control characters (line breaks, tabs) are not printed as glyphs and never count.
pub fn unprintable(text: &str) -> Vec<char> {
    static CHARMAP: std::sync::OnceLock<Option<skrifa::charmap::Charmap<'static>>> =
        std::sync::OnceLock::new();
    let Some(charmap) = CHARMAP.get_or_init(|| FontRef::new(FONT_TTF).ok().map(|f| f.charmap()))
    else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    for c in text.chars() {
        if !c.is_control() && charmap.map(c).is_none() && !missing.contains(&c) {
            missing.push(c);
        }
    }
    missing
}

/// Characters that must not begin a line (行頭禁則); they hang past the right edge instead.
pub(super) const NO_LINE_START: &str = "、。，．,.・：；:;？！?!)）]］}｝」』】〕〉》”’ーぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々ゝゞヽヾ％%";
/// Characters that must not end a line (行末禁則); they move to the next line.
pub(super) const NO_LINE_END: &str = "(（[［{｛「『【〔〈《“‘";

/// Splits text into lines no wider than `width` at `size` points: Japanese may break between
/// any two characters, runs of Latin letters and digits break at spaces unless a run alone is
/// wider than a line, and the usual kinsoku rules hold. Line breaks in the text are kept.
pub(super) fn wrap(face: &Face, text: &str, size: f32, width: f32) -> Vec<String> {
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

pub(super) fn wrap_paragraph(
    face: &Face,
    text: &str,
    size: f32,
    width: f32,
    lines: &mut Vec<String>,
) {
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
pub(super) fn units(face: &Face, text: &str, size: f32, width: f32) -> Vec<String> {
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
