//! The print's fonts and Japanese line breaking: measuring text and wrapping it to a width with
//! the kinsoku rules, which font draws each character, and which characters no font can print.
//! Never draws.
//!
//! IPAex Gothic is embedded. A fallback font (IPAmj明朝 by default, Debian's
//! fonts-ipamj-mincho) draws what it lacks: characters outside the basic plane (𠮷) and
//! ideographic variation sequences (葛󠄀, 葛 + U+E0100), so that names print as typed and stay in
//! the PDF's text layer. [`load_fallback_font`] loads it once per process.

use std::path::Path;
use std::sync::OnceLock;

use super::PrintError;
use krilla::text::Font;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, GlyphId, MetadataProvider};

/// IPAex Gothic 004.01 (IPA Font License v1.0, text beside the file).
pub(super) static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/ipaexg.ttf");

/// Where Debian's package fonts-ipamj-mincho installs IPAmj明朝 (IPA Font License v1.0), the
/// fallback font when the configuration names none.
pub const DEFAULT_FALLBACK_FONT: &str = "/usr/share/fonts/truetype/ipamj/ipamjm.ttf";

/// One font the print draws with: for drawing (krilla) and for measuring (skrifa).
pub(super) struct FontFile {
    pub(super) font: Font,
    metrics: GlyphMetrics<'static>,
    charmap: skrifa::charmap::Charmap<'static>,
    units_per_em: f32,
}

impl FontFile {
    fn parse(bytes: &'static [u8]) -> Option<FontFile> {
        let font = Font::new(bytes.into(), 0)?;
        let font_ref = FontRef::new(bytes).ok()?;
        let units_per_em = f32::from(
            font_ref
                .metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        (units_per_em > 0.0).then(|| FontFile {
            font,
            metrics: font_ref.glyph_metrics(Size::unscaled(), LocationRef::default()),
            charmap: font_ref.charmap(),
            units_per_em,
        })
    }

    /// Whether the font draws `c`, followed by the variation selector `selector` if any.
    fn covers(&self, c: char, selector: Option<char>) -> bool {
        self.charmap.map(c).is_some()
            && selector.is_none_or(|vs| self.charmap.map_variant(c, vs).is_some())
    }

    /// The advance of `c` at `size` points.
    fn advance(&self, c: char, size: f32) -> f32 {
        let glyph = self.charmap.map(c).unwrap_or(GlyphId::NOTDEF);
        self.metrics
            .advance_width(glyph)
            .unwrap_or(self.units_per_em)
            * size
            / self.units_per_em
    }
}

static FALLBACK: OnceLock<Option<FontFile>> = OnceLock::new();

/// Loads the fallback font from `path` (a TrueType/OpenType file), once per process: the first
/// call decides, later calls change nothing and answer whether a fallback is in use. The file is
/// read whole and kept for the life of the process. Errors: the file cannot be read or is not a
/// font (then no fallback is used).
pub fn load_fallback_font(path: &Path) -> Result<bool, String> {
    let mut error = None;
    let loaded = FALLBACK.get_or_init(|| {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                error = Some(format!("{} を読めません: {e}", path.display()));
                return None;
            }
        };
        let parsed = FontFile::parse(Box::leak(bytes.into_boxed_slice()));
        if parsed.is_none() {
            error = Some(format!("{} はフォントとして読めません", path.display()));
        }
        parsed
    });
    match error {
        Some(e) => Err(e),
        None => Ok(loaded.is_some()),
    }
}

fn fallback() -> Option<&'static FontFile> {
    FALLBACK.get().and_then(Option::as_ref)
}

fn primary() -> Option<&'static FontFile> {
    static PRIMARY: OnceLock<Option<FontFile>> = OnceLock::new();
    PRIMARY.get_or_init(|| FontFile::parse(FONT_TTF)).as_ref()
}

/// A variation selector (VS1–16, VS17–256): drawn with the character before it.
pub(super) fn is_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// The characters of `text` with the variation selector that follows each, if any.
fn clusters(text: &str) -> impl Iterator<Item = (usize, char, Option<char>, usize)> + '_ {
    let mut it = text.char_indices().peekable();
    std::iter::from_fn(move || {
        loop {
            let (at, c) = it.next()?;
            if is_selector(c) {
                continue; // a selector with nothing before it: not drawn
            }
            let selector = it.next_if(|(_, n)| is_selector(*n)).map(|(_, vs)| vs);
            let end = it.peek().map_or(text.len(), |(i, _)| *i);
            return Some((at, c, selector, end));
        }
    })
}

/// The print's fonts: the embedded one, and the fallback when one is loaded.
pub(super) struct Face {
    primary: &'static FontFile,
    fallback: Option<&'static FontFile>,
}

impl Face {
    pub(super) fn load() -> Result<Face, PrintError> {
        Ok(Face {
            primary: primary().ok_or(PrintError::Font)?,
            fallback: fallback(),
        })
    }

    /// The embedded font alone, as without a fallback (for tests).
    #[cfg(test)]
    pub(super) fn embedded_only() -> Result<Face, PrintError> {
        Ok(Face {
            primary: primary().ok_or(PrintError::Font)?,
            fallback: None,
        })
    }

    /// The font that draws `c` (with its selector): the embedded one when it can, else the
    /// fallback when it can, else the embedded one (a character entry refuses: [`unprintable`]).
    fn font_for(&self, c: char, selector: Option<char>) -> &'static FontFile {
        if self.primary.covers(c, selector) {
            return self.primary;
        }
        match self.fallback {
            Some(f) if f.covers(c, selector) => f,
            _ => self.primary,
        }
    }

    /// `text` cut into runs each drawn with one font, in order.
    pub(super) fn runs<'t>(&self, text: &'t str) -> Vec<(&'static FontFile, &'t str)> {
        let mut out: Vec<(&'static FontFile, std::ops::Range<usize>)> = Vec::new();
        for (start, c, selector, end) in clusters(text) {
            let font = self.font_for(c, selector);
            match out.last_mut() {
                Some((f, range)) if std::ptr::eq(*f, font) && range.end == start => {
                    range.end = end;
                }
                _ => out.push((font, start..end)),
            }
        }
        out.into_iter().map(|(f, r)| (f, &text[r])).collect()
    }

    /// The advance of `text` at `size` points, character by character, each in its font.
    pub(super) fn width(&self, text: &str, size: f32) -> f32 {
        clusters(text)
            .map(|(_, c, selector, _)| self.font_for(c, selector).advance(c, size))
            .sum()
    }
}

/// The characters of `text` no font of the print can draw, each once, in order: they would print
/// as blanks. Of a character with a variation selector that only the selector's form is missing
/// for, the selector is named (葛 + U+E0100 would print as plain 葛). Control characters (line
/// breaks, tabs) are not printed as glyphs and never count. Uses the fallback font when one was
/// loaded ([`load_fallback_font`]).
pub fn unprintable(text: &str) -> Vec<char> {
    let Ok(face) = Face::load() else {
        return Vec::new();
    };
    unprintable_with(&face, text)
}

pub(super) fn unprintable_with(face: &Face, text: &str) -> Vec<char> {
    let fonts = std::iter::once(face.primary).chain(face.fallback);
    let fonts: Vec<&FontFile> = fonts.collect();
    let mut missing = Vec::new();
    for (_, c, selector, _) in clusters(text) {
        if c.is_control() || fonts.iter().any(|f| f.covers(c, selector)) {
            continue;
        }
        let named = match selector {
            Some(vs) if fonts.iter().any(|f| f.covers(c, None)) => vs,
            _ => c,
        };
        if !missing.contains(&named) {
            missing.push(named);
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
        if is_selector(c) {
            // A variation selector stays with the character before it.
            match (word.is_empty(), out.last_mut()) {
                (false, _) => word.push(c),
                (true, Some(last)) => last.push(c),
                (true, None) => {}
            }
            continue;
        }
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
