//! The XML layout hospital systems write sheets in (登録方法パターン2・3, the seed's No.3), and
//! nsdb's データ出力 in the same layout: a schema (XSD) and a sample per form, generated from the
//! form catalogue so that a form change changes the layout and nothing is kept twice; a reader for
//! files as hospitals will write them; a writer for export.
//!
//! The layout, for one file:
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Sheets layout="1">
//!   <Sheet form="rinko-002" formVersion="2023.04" ref="hospital's own id">
//!     <BasicInfo>
//!       <kokuji>2</kokuji><eda>0</eda>
//!       <application><type>1</type></application>
//!       <patient><name>難病 太郎</name>…</patient>
//!     </BasicInfo>
//!     <DiagnosticCriteria><diagnosis>…</diagnosis></DiagnosticCriteria>
//!     <Severity>…</Severity> <ResearchSurvey>…</ResearchSurvey>
//!     <Ventilator>…</Ventilator> <Institution>…</Institution>
//!   </Sheet>
//! </Sheets>
//! ```
//!
//! An item `section.name` of the form is the element `<name>` inside `<section>` inside the
//! section's block ([`Block::of`]). Everything is optional below `<Sheet>` (partial files), and
//! order does not matter. `docs/xml-layout.md` is the vendors' description.
//!
//! This module is pure like the rest of the crate: bytes and strings in, values out. It must
//! never resolve a DTD or an entity beyond XML's five predefined ones, never read a file or the
//! network, and never let input size decide how much memory or time it takes beyond the limits
//! in [`limits`].

mod read;
mod sample;
mod schema;
mod write;

pub use read::{ReadError, SheetError, SheetRead, read};
pub use sample::{sample, sample_values};
pub use schema::schema;
pub use write::{SheetOut, WriteError, write};

use crate::form::{FormDef, SectionDef};

/// The root element of every file.
pub const ROOT: &str = "Sheets";
/// The element of one sheet.
pub const SHEET: &str = "Sheet";
/// The layout version written in `<Sheets layout="…">`; a file naming another is refused.
pub const LAYOUT_VERSION: &str = "1";

/// The bounds the reader keeps whatever the input; a file beyond them is refused as a whole.
pub mod limits {
    /// Largest file read, in bytes (16 MiB, about a thousand full sheets).
    pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
    /// Deepest element nesting (the layout needs 5: Sheets/Sheet/block/section/item).
    pub const MAX_DEPTH: usize = 8;
    /// Longest value of one item, in characters.
    pub const MAX_VALUE_CHARS: usize = 10_000;
    /// Most sheets in one file.
    pub const MAX_SHEETS: usize = 10_000;
    /// Most attributes on one element.
    pub const MAX_ATTRIBUTES: usize = 8;
    /// Most errors kept per sheet; the rest are counted in one last message.
    pub const MAX_SHEET_ERRORS: usize = 100;
    /// Most errors in one file, counted or kept; beyond it the file is refused.
    pub const MAX_FILE_ERRORS: usize = 10_000;
}

/// The six blocks the seed's XML layout requirements (No.3) list, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Block {
    /// 基本情報: 申請区分 (新規/更新), 患者情報, 告示番号・枝番, 家族歴, 発症年月, 生活状況.
    Basic,
    /// 診断基準情報: 病型, 臨床所見, 検査所見, 遺伝学的検査, 鑑別診断 (the judged category).
    Criteria,
    /// 重症度分類情報: 重症度分類, 疾患特異的重症度 (医療意見書: 疾病の状態の程度(対象基準)).
    Severity,
    /// 研究調査情報: 臨床所見, 検査所見, 発症と経過, 治療 and every other section of a disease.
    Research,
    /// 人工呼吸器使用情報.
    Ventilator,
    /// 医療機関情報: 医療機関, 指定医, 記載年月日.
    Institution,
}

impl Block {
    /// Every block, in the order a sheet's elements are written.
    pub const ALL: [Block; 6] = [
        Block::Basic,
        Block::Criteria,
        Block::Severity,
        Block::Research,
        Block::Ventilator,
        Block::Institution,
    ];

    /// The block's element name.
    pub fn element(self) -> &'static str {
        match self {
            Block::Basic => "BasicInfo",
            Block::Criteria => "DiagnosticCriteria",
            Block::Severity => "Severity",
            Block::Research => "ResearchSurvey",
            Block::Ventilator => "Ventilator",
            Block::Institution => "Institution",
        }
    }

    /// The block's name as the seed gives it.
    pub fn title(self) -> &'static str {
        match self {
            Block::Basic => "基本情報",
            Block::Criteria => "診断基準情報",
            Block::Severity => "重症度分類情報",
            Block::Research => "研究調査情報",
            Block::Ventilator => "人工呼吸器使用情報",
            Block::Institution => "医療機関情報",
        }
    }

    pub fn from_element(name: &str) -> Option<Block> {
        Block::ALL.into_iter().find(|b| b.element() == name)
    }

    /// The block a section belongs to. Shared sections by id: `application`, `patient`, `basic`
    /// → 基本情報; `ventilator` → 人工呼吸器; `doctor` → 医療機関; `diagnosis` → 診断基準;
    /// `severity` and the 医療意見書's `criteria` (疾病の状態の程度, the 小慢 counterpart of a
    /// severity) → 重症度分類. Any other section by its title: 重症度 → 重症度分類, 診断 →
    /// 診断基準, anything else → 研究調査.
    pub fn of(section: &SectionDef) -> Block {
        match section.id.as_str() {
            "application" | "patient" | "basic" => Block::Basic,
            "ventilator" => Block::Ventilator,
            "doctor" => Block::Institution,
            "diagnosis" => Block::Criteria,
            "severity" | "criteria" => Block::Severity,
            _ if section.title.contains("重症度") => Block::Severity,
            _ if section.title.contains("診断") => Block::Criteria,
            _ => Block::Research,
        }
    }
}

/// The form's sections grouped by block, blocks in file order, sections in screen order; blocks
/// without sections are left out.
pub fn blocks(form: &FormDef) -> Vec<(Block, Vec<&SectionDef>)> {
    Block::ALL
        .into_iter()
        .map(|b| {
            let sections: Vec<&SectionDef> =
                form.sections.iter().filter(|s| Block::of(s) == b).collect();
            (b, sections)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// The element name of an item inside its section's element: the id without `section.`.
pub fn item_element<'a>(section: &SectionDef, item_id: &'a str) -> &'a str {
    item_id
        .strip_prefix(section.id.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(item_id)
}

/// The elements of 告示番号 and 枝番 inside `<BasicInfo>`.
pub const KOKUJI: &str = "kokuji";
pub const EDA: &str = "eda";

#[cfg(test)]
mod tests;
