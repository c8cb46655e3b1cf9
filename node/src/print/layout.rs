//! The A4 geometry and the layout of a sheet's body: the blocks (section bars, items, the
//! signature block) and how they are laid out on pages. Pure arithmetic on measured text; it
//! draws nothing (that is `draw`).

use super::{MASK, PrintMeta, UNANSWERED};
use std::collections::BTreeMap;

use nsdb_rules::{FormDef, ItemType};
use nsdb_ui::editor::display_value;

use super::masking::*;
use super::text::*;

/// A4 portrait in points.
pub(super) const PAGE_W: f32 = 595.276;
pub(super) const PAGE_H: f32 = 841.89;
pub(super) const MARGIN_X: f32 = 42.0;
pub(super) const MARGIN_TOP: f32 = 34.0;
pub(super) const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;

pub(super) const QR_SIZE: f32 = 62.0;
/// The rule under the header.
pub(super) const HEADER_RULE: f32 = MARGIN_TOP + QR_SIZE + 12.0;
pub(super) const BODY_TOP: f32 = HEADER_RULE + 10.0;
/// The rule above the footer.
pub(super) const FOOTER_RULE: f32 = PAGE_H - 40.0;
pub(super) const BODY_BOTTOM: f32 = FOOTER_RULE - 8.0;
pub(super) const BODY_H: f32 = BODY_BOTTOM - BODY_TOP;

pub(super) const LABEL_W: f32 = 168.0;
pub(super) const LABEL_SIZE: f32 = 9.0;
pub(super) const VALUE_SIZE: f32 = 10.0;
pub(super) const LINE_H: f32 = 14.0;
pub(super) const ROW_PAD: f32 = 4.0;
/// Room kept right of the value column for punctuation that hangs past the line (ぶら下げ).
pub(super) const HANG: f32 = 11.0;
pub(super) const VALUE_X: f32 = MARGIN_X + LABEL_W + 8.0;
pub(super) const VALUE_W: f32 = PAGE_W - MARGIN_X - VALUE_X - 4.0 - HANG;
pub(super) const LABEL_TEXT_W: f32 = LABEL_W - 10.0;

pub(super) const SECTION_GAP: f32 = 8.0;
pub(super) const SECTION_BAR: f32 = 19.0;
pub(super) const SECTION_SIZE: f32 = 10.5;

pub(super) const SIGN_ROW: f32 = 24.0;
pub(super) const SIGN_BOX: f32 = 64.0;

// Grey levels (0 black .. 255 white).
pub(super) const INK: u8 = 0;
pub(super) const LABEL_INK: u8 = 60;
pub(super) const FAINT_INK: u8 = 120;
pub(super) const RULE_INK: u8 = 170;
pub(super) const BAR_FILL: u8 = 228;

/// How a value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueStyle {
    Answer,
    Unanswered,
    Masked,
}

/// One unbreakable piece of the body.
#[derive(Debug, Clone)]
pub(super) enum Block {
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
    pub(super) fn height(&self) -> f32 {
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
pub(super) struct Placed {
    pub(super) top: f32,
    pub(super) block: Block,
}

/// Items the signature block prints, so the form's section leaves them out.
pub(super) const SIGNED: [&str; 3] = [
    "doctor.written_date",
    "doctor.institution_name",
    "doctor.name",
];

pub(super) fn blocks(
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
pub(super) fn paginate(blocks: Vec<Block>) -> Vec<Vec<Placed>> {
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
