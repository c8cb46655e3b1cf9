//! The municipality's part of a sheet document: its review (認定結果, 有効期間, 研究利用の同意,
//! 所得区分) and its inquiries (照会) to the hospital, with typed reads, setters and the check
//! of their layout in documents that come from outside.
//!
//! Layout (root keys, absent in documents that have no review or inquiry):
//!
//! | key                   | value                                                      |
//! |-----------------------|------------------------------------------------------------|
//! | `review.<自治体コード>` | map, one municipality's review ([`Review`])                 |
//! | `inquiry.<id>`        | map, one inquiry ([`Inquiry`])                             |
//!
//! Each review and each inquiry is its own root key rather than an entry of one shared map:
//! two nodes that each created a shared `reviews` map while apart would leave two maps under
//! one key, and Automerge would show only one of them. Root keys of different municipalities
//! or inquiries never collide.
//!
//! Review map: `linked_ms` int (受付・自治体連携, unix ms), and when recorded `decision` str
//! ([`Decision`] code), `reason` str (不認定の理由), `valid_from`/`valid_to` str (YYYY-MM-DD),
//! `research_consent` str ([`ResearchConsent`] code), `income` str ([`IncomeCategory`] code),
//! `income_special` str ([`IncomeSpecial`] code), `decided_ms` int, `reviewer` str.
//!
//! Inquiry map: `municipality` str, `fields` list of str (field ids), `question` str,
//! `asked_by` str, `asked_ms` int, `asked_heads` list of str (hex change hashes: the version
//! the question was asked about), `state` str ([`InquiryState`] code), and when answered
//! `answer` str, `answered_by` str, `answered_ms` int, when closed `closed_ms` int.
//!
//! This module must never read the clock, never invent ids, never write a value that does not
//! change, and never accept a review or inquiry whose layout it has not checked.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::Serialize;

use crate::error::SheetError;
use crate::sheet::{Edit, Sheet};

/// Root keys of reviews start with this prefix, followed by the 自治体コード.
pub const REVIEW_PREFIX: &str = "review.";
/// Root keys of inquiries start with this prefix, followed by the inquiry id.
pub const INQUIRY_PREFIX: &str = "inquiry.";

mod rkey {
    pub const LINKED_MS: &str = "linked_ms";
    pub const DECISION: &str = "decision";
    pub const REASON: &str = "reason";
    pub const VALID_FROM: &str = "valid_from";
    pub const VALID_TO: &str = "valid_to";
    pub const RESEARCH_CONSENT: &str = "research_consent";
    pub const INCOME: &str = "income";
    pub const INCOME_SPECIAL: &str = "income_special";
    pub const DECIDED_MS: &str = "decided_ms";
    pub const REVIEWER: &str = "reviewer";
}

mod ikey {
    pub const MUNICIPALITY: &str = "municipality";
    pub const FIELDS: &str = "fields";
    pub const QUESTION: &str = "question";
    pub const ASKED_BY: &str = "asked_by";
    pub const ASKED_MS: &str = "asked_ms";
    pub const ASKED_HEADS: &str = "asked_heads";
    pub const STATE: &str = "state";
    pub const ANSWER: &str = "answer";
    pub const ANSWERED_BY: &str = "answered_by";
    pub const ANSWERED_MS: &str = "answered_ms";
    pub const CLOSED_MS: &str = "closed_ms";
}

/// Keys a hospital may write in an inquiry (its answer); every other inquiry key is the
/// municipality's.
pub const INQUIRY_ANSWER_KEYS: &[&str] = &[
    ikey::ANSWER,
    ikey::ANSWERED_BY,
    ikey::ANSWERED_MS,
    ikey::STATE,
];

macro_rules! coded {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = ($code:literal, $label:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code stored in documents and used in forms and the API.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// The Japanese label shown to users.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// The value of a stored code; `None` for an unknown code.
            pub fn from_code(code: &str) -> Option<$name> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

coded! {
    /// 認定結果: the municipality's decision on the application.
    Decision {
        /// 認定
        Approved = ("approved", "認定"),
        /// 不認定 (a reason is recorded with it)
        Rejected = ("rejected", "不認定"),
        /// 保留 (pending, e.g. while an inquiry is open)
        Deferred = ("deferred", "保留"),
    }
}

coded! {
    /// 研究利用の同意: whether the patient consented to research use of the sheet.
    ResearchConsent {
        /// 同意あり
        Given = ("given", "同意あり"),
        /// 同意なし
        NotGiven = ("not_given", "同意なし"),
    }
}

coded! {
    /// 所得区分: the income tier of the 自己負担上限額 tables, the same six tiers for 指定難病
    /// and 小児慢性特定疾病 (docs/review.md gives the sources and the monthly limits).
    IncomeCategory {
        /// 生活保護
        Welfare = ("seikatsu_hogo", "生活保護"),
        /// 低所得Ⅰ
        LowI = ("teishotoku_1", "低所得Ⅰ"),
        /// 低所得Ⅱ
        LowII = ("teishotoku_2", "低所得Ⅱ"),
        /// 一般所得Ⅰ
        GeneralI = ("ippan_1", "一般所得Ⅰ"),
        /// 一般所得Ⅱ
        GeneralII = ("ippan_2", "一般所得Ⅱ"),
        /// 上位所得
        Upper = ("joui", "上位所得"),
    }
}

coded! {
    /// The special rows of the 自己負担上限額 tables that apply on top of the income tier.
    IncomeSpecial {
        /// 高額かつ長期 (指定難病)
        HighCostLongTerm = ("kougaku_chouki", "高額かつ長期"),
        /// 人工呼吸器等装着者 (指定難病・小慢)
        Ventilator = ("jinkou_kokyuki", "人工呼吸器等装着者"),
        /// 重症 (小慢: 重症患者認定)
        Severe = ("juusho", "重症"),
    }
}

coded! {
    /// Where an inquiry stands.
    InquiryState {
        /// 照会中: asked, not answered yet.
        Open = ("open", "照会中"),
        /// 回答済: the hospital answered; the municipality has not closed it.
        Answered = ("answered", "回答済"),
        /// 完了: the municipality closed it.
        Closed = ("closed", "完了"),
    }
}

/// One municipality's review of a sheet. Everything but `municipality` and `linked_ms` is
/// `None` until the reviewer records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// 自治体コード of the reviewing municipality.
    pub municipality: String,
    /// When the municipality received (linked) the sheet, unix ms: the hospital's 自治体連携日.
    pub linked_ms: i64,
    /// 認定結果.
    pub decision: Option<Decision>,
    /// 不認定の理由 (free text).
    pub reason: Option<String>,
    /// 有効期間 start, YYYY-MM-DD.
    pub valid_from: Option<String>,
    /// 有効期間 end, YYYY-MM-DD.
    pub valid_to: Option<String>,
    /// 研究利用の同意.
    pub research_consent: Option<ResearchConsent>,
    /// 所得区分.
    pub income: Option<IncomeCategory>,
    /// 高額かつ長期 / 人工呼吸器等装着者 / 重症, when one applies.
    pub income_special: Option<IncomeSpecial>,
    /// When the decision was recorded, unix ms.
    pub decided_ms: Option<i64>,
    /// The reviewer's name as shown on the municipality's screen.
    pub reviewer: Option<String>,
}

impl Review {
    /// A review of `municipality` received at `linked_ms` with nothing recorded yet.
    pub fn linked(municipality: &str, linked_ms: i64) -> Review {
        Review {
            municipality: municipality.to_owned(),
            linked_ms,
            decision: None,
            reason: None,
            valid_from: None,
            valid_to: None,
            research_consent: None,
            income: None,
            income_special: None,
            decided_ms: None,
            reviewer: None,
        }
    }

    /// The stored (key, value) pairs of this review; `None` values are absent keys.
    fn entries(&self) -> Vec<(&'static str, Option<ScalarValue>)> {
        let text = |s: &Option<String>| s.as_ref().map(|s| ScalarValue::Str(s.as_str().into()));
        let code = |c: Option<&'static str>| c.map(|c| ScalarValue::Str(c.into()));
        vec![
            (rkey::LINKED_MS, Some(ScalarValue::Int(self.linked_ms))),
            (rkey::DECISION, code(self.decision.map(Decision::code))),
            (rkey::REASON, text(&self.reason)),
            (rkey::VALID_FROM, text(&self.valid_from)),
            (rkey::VALID_TO, text(&self.valid_to)),
            (
                rkey::RESEARCH_CONSENT,
                code(self.research_consent.map(ResearchConsent::code)),
            ),
            (rkey::INCOME, code(self.income.map(IncomeCategory::code))),
            (
                rkey::INCOME_SPECIAL,
                code(self.income_special.map(IncomeSpecial::code)),
            ),
            (rkey::DECIDED_MS, self.decided_ms.map(ScalarValue::Int)),
            (rkey::REVIEWER, text(&self.reviewer)),
        ]
    }
}

/// An inquiry (照会) from a municipality about items of the sheet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inquiry {
    /// Its id, unique within the sheet (chosen by the asking node, e.g. a uuid).
    pub id: String,
    /// 自治体コード of the asking municipality.
    pub municipality: String,
    /// The field ids the question is about (at least one), in the order given.
    pub fields: Vec<String>,
    pub question: String,
    /// The reviewer's name.
    pub asked_by: String,
    /// Unix ms.
    pub asked_ms: i64,
    /// The sheet's version when the question was asked: [`Sheet::diff`] from these heads shows
    /// what changed since.
    pub asked_heads: Vec<ChangeHash>,
    pub state: InquiryState,
    pub answer: Option<String>,
    pub answered_by: Option<String>,
    /// Unix ms.
    pub answered_ms: Option<i64>,
    /// Unix ms.
    pub closed_ms: Option<i64>,
}

/// What a reviewer asks: the inquiry's id (chosen by the caller, unique within the sheet, no
/// `.`), the municipality, the field ids, the question and the reviewer's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInquiry {
    pub id: String,
    pub municipality: String,
    pub fields: Vec<String>,
    pub question: String,
    pub asked_by: String,
}

impl Sheet {
    /// Every municipality's review of this sheet, by 自治体コード.
    pub fn reviews(&self) -> BTreeMap<String, Review> {
        let mut reviews = BTreeMap::new();
        for item in self.doc.map_range(ROOT, ..) {
            if let Some(code) = item.key.strip_prefix(REVIEW_PREFIX)
                && let Ok(Some((Value::Object(ObjType::Map), obj))) =
                    self.doc.get(ROOT, item.key.as_ref())
                && let Ok(review) = read_review(&self.doc, &obj, code)
            {
                reviews.insert(code.to_owned(), review);
            }
        }
        reviews
    }

    /// The review of one municipality, `None` when it has none.
    pub fn review(&self, municipality: &str) -> Option<Review> {
        let key = format!("{REVIEW_PREFIX}{municipality}");
        match self.doc.get(ROOT, key.as_str()) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => {
                read_review(&self.doc, &obj, municipality).ok()
            }
            _ => None,
        }
    }

    /// Writes `review` as the review of `review.municipality` in one change by `edit`, writing
    /// only the keys whose value differs (a `None` clears the key). Returns whether it wrote.
    ///
    /// Errors: [`SheetError::InvalidReview`] when the 自治体コード is empty or holds `.`, or a
    /// date is not YYYY-MM-DD.
    pub fn set_review(&mut self, review: &Review, edit: Edit<'_>) -> Result<bool, SheetError> {
        let code = &review.municipality;
        if code.is_empty() || code.contains('.') {
            return Err(SheetError::InvalidReview {
                what: "自治体コードが空か、「.」を含んでいます",
            });
        }
        for date in [&review.valid_from, &review.valid_to].into_iter().flatten() {
            if !is_date(date) {
                return Err(SheetError::InvalidReview {
                    what: "有効期間の日付は YYYY-MM-DD で入力してください",
                });
            }
        }
        let root_key = format!("{REVIEW_PREFIX}{code}");
        let existing = match self.doc.get(ROOT, root_key.as_str()) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => Some(obj),
            _ => None,
        };
        let writes: Vec<(&'static str, Option<ScalarValue>)> = review
            .entries()
            .into_iter()
            .filter(|(key, value)| match &existing {
                None => value.is_some(),
                Some(obj) => {
                    let current = scalar(&self.doc, obj, key);
                    let conflicted = self.doc.get_all(obj, *key).is_ok_and(|v| v.len() > 1);
                    current.as_ref() != value.as_ref() || conflicted
                }
            })
            .collect();
        if writes.is_empty() {
            return Ok(false);
        }
        self.write(edit, |tx| {
            let obj = match &existing {
                Some(obj) => obj.clone(),
                None => tx.put_object(ROOT, root_key.as_str(), ObjType::Map)?,
            };
            for (key, value) in writes {
                match value {
                    Some(value) => tx.put(&obj, key, value)?,
                    None => tx.delete(&obj, key)?,
                }
            }
            Ok(())
        });
        Ok(true)
    }

    /// Every inquiry, oldest first (by `asked_ms`, then id).
    pub fn inquiries(&self) -> Vec<Inquiry> {
        let mut inquiries: Vec<Inquiry> = self
            .doc
            .map_range(ROOT, ..)
            .filter_map(|item| {
                let id = item.key.strip_prefix(INQUIRY_PREFIX)?;
                match self.doc.get(ROOT, item.key.as_ref()) {
                    Ok(Some((Value::Object(ObjType::Map), obj))) => {
                        read_inquiry(&self.doc, &obj, id).ok()
                    }
                    _ => None,
                }
            })
            .collect();
        inquiries.sort_by(|a, b| (a.asked_ms, &a.id).cmp(&(b.asked_ms, &b.id)));
        inquiries
    }

    /// One inquiry by id.
    pub fn inquiry(&self, id: &str) -> Option<Inquiry> {
        let obj = self.inquiry_obj(id)?;
        read_inquiry(&self.doc, &obj, id).ok()
    }

    /// Records a new open inquiry, asked at the current version, as one change by `edit`
    /// (`edit.at_ms` is the time asked). Returns the inquiry as stored.
    ///
    /// Errors: [`SheetError::InvalidInquiry`] when the id is empty, holds `.` or is taken, when
    /// no field is named, or when the question is blank.
    pub fn ask(&mut self, inquiry: NewInquiry, edit: Edit<'_>) -> Result<Inquiry, SheetError> {
        if inquiry.id.is_empty() || inquiry.id.contains('.') {
            return Err(SheetError::InvalidInquiry {
                what: "照会の識別子が空か、「.」を含んでいます",
            });
        }
        if self.inquiry_obj(&inquiry.id).is_some() {
            return Err(SheetError::InvalidInquiry {
                what: "同じ識別子の照会がすでにあります",
            });
        }
        if inquiry.fields.is_empty() || inquiry.fields.iter().any(|f| f.is_empty()) {
            return Err(SheetError::InvalidInquiry {
                what: "照会する項目を一つ以上選んでください",
            });
        }
        if inquiry.question.trim().is_empty() {
            return Err(SheetError::InvalidInquiry {
                what: "照会の内容を入力してください",
            });
        }
        let heads = self.doc.get_heads();
        let root_key = format!("{INQUIRY_PREFIX}{}", inquiry.id);
        self.write(edit, |tx| {
            let obj = tx.put_object(ROOT, root_key.as_str(), ObjType::Map)?;
            tx.put(&obj, ikey::MUNICIPALITY, inquiry.municipality.as_str())?;
            let fields = tx.put_object(&obj, ikey::FIELDS, ObjType::List)?;
            for (i, field) in inquiry.fields.iter().enumerate() {
                tx.insert(&fields, i, field.as_str())?;
            }
            tx.put(&obj, ikey::QUESTION, inquiry.question.as_str())?;
            tx.put(&obj, ikey::ASKED_BY, inquiry.asked_by.as_str())?;
            tx.put(&obj, ikey::ASKED_MS, edit.at_ms)?;
            let list = tx.put_object(&obj, ikey::ASKED_HEADS, ObjType::List)?;
            for (i, hash) in heads.iter().enumerate() {
                tx.insert(&list, i, hash.to_string())?;
            }
            tx.put(&obj, ikey::STATE, InquiryState::Open.code())
        });
        Ok(Inquiry {
            id: inquiry.id,
            municipality: inquiry.municipality,
            fields: inquiry.fields,
            question: inquiry.question,
            asked_by: inquiry.asked_by,
            asked_ms: edit.at_ms,
            asked_heads: heads,
            state: InquiryState::Open,
            answer: None,
            answered_by: None,
            answered_ms: None,
            closed_ms: None,
        })
    }

    /// Records the hospital's answer to inquiry `id` (state 回答済) as one change by `edit`;
    /// answering again replaces the answer. Returns whether it wrote (not when the same answer
    /// by the same person is already recorded).
    ///
    /// Errors: [`SheetError::InvalidInquiry`] when there is no such inquiry, it is closed, or
    /// the answer is blank.
    pub fn answer(
        &mut self,
        id: &str,
        answer: &str,
        answered_by: &str,
        edit: Edit<'_>,
    ) -> Result<bool, SheetError> {
        let current = self.inquiry(id).ok_or(SheetError::InvalidInquiry {
            what: "この照会はありません",
        })?;
        if current.state == InquiryState::Closed {
            return Err(SheetError::InvalidInquiry {
                what: "この照会は完了しています",
            });
        }
        if answer.trim().is_empty() {
            return Err(SheetError::InvalidInquiry {
                what: "回答を入力してください",
            });
        }
        if current.state == InquiryState::Answered
            && current.answer.as_deref() == Some(answer)
            && current.answered_by.as_deref() == Some(answered_by)
        {
            return Ok(false);
        }
        let obj = self.inquiry_obj(id).ok_or(SheetError::InvalidInquiry {
            what: "この照会はありません",
        })?;
        self.write(edit, |tx| {
            tx.put(&obj, ikey::ANSWER, answer)?;
            tx.put(&obj, ikey::ANSWERED_BY, answered_by)?;
            tx.put(&obj, ikey::ANSWERED_MS, edit.at_ms)?;
            tx.put(&obj, ikey::STATE, InquiryState::Answered.code())
        });
        Ok(true)
    }

    /// Closes inquiry `id` (state 完了) as one change by `edit`; returns whether it wrote (not
    /// when it is closed already).
    ///
    /// Errors: [`SheetError::InvalidInquiry`] when there is no such inquiry.
    pub fn close_inquiry(&mut self, id: &str, edit: Edit<'_>) -> Result<bool, SheetError> {
        let current = self.inquiry(id).ok_or(SheetError::InvalidInquiry {
            what: "この照会はありません",
        })?;
        if current.state == InquiryState::Closed {
            return Ok(false);
        }
        let obj = self.inquiry_obj(id).ok_or(SheetError::InvalidInquiry {
            what: "この照会はありません",
        })?;
        self.write(edit, |tx| {
            tx.put(&obj, ikey::STATE, InquiryState::Closed.code())?;
            tx.put(&obj, ikey::CLOSED_MS, edit.at_ms)
        });
        Ok(true)
    }

    fn inquiry_obj(&self, id: &str) -> Option<ObjId> {
        let key = format!("{INQUIRY_PREFIX}{id}");
        match self.doc.get(ROOT, key.as_str()) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => Some(obj),
            _ => None,
        }
    }
}

/// Checks every review and inquiry of `doc` (the root keys with their prefixes).
pub(crate) fn check(doc: &Automerge) -> Result<(), SheetError> {
    for item in doc.map_range(ROOT, ..) {
        let key = item.key.as_ref();
        if let Some(code) = key.strip_prefix(REVIEW_PREFIX) {
            let obj = object(doc, key)?;
            read_review(doc, &obj, code)?;
        } else if let Some(id) = key.strip_prefix(INQUIRY_PREFIX) {
            let obj = object(doc, key)?;
            read_inquiry(doc, &obj, id)?;
        }
    }
    Ok(())
}

fn object(doc: &Automerge, key: &str) -> Result<ObjId, SheetError> {
    match doc.get(ROOT, key) {
        Ok(Some((Value::Object(ObjType::Map), obj))) => Ok(obj),
        _ => Err(SheetError::WrongType {
            key: key.to_owned(),
            expected: "a map",
        }),
    }
}

fn scalar(doc: &Automerge, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(value), _))) => Some(value.into_owned()),
        _ => None,
    }
}

/// Typed reads inside one review or inquiry map; `prefix` names it in errors.
struct Entry<'a> {
    doc: &'a Automerge,
    obj: &'a ObjId,
    prefix: String,
}

impl Entry<'_> {
    fn wrong(&self, key: &str, expected: &'static str) -> SheetError {
        SheetError::WrongType {
            key: format!("{}.{key}", self.prefix),
            expected,
        }
    }

    fn text(&self, key: &str) -> Result<Option<String>, SheetError> {
        match self.doc.get(self.obj, key) {
            Ok(None) => Ok(None),
            Ok(Some((value, _))) => value
                .into_string()
                .map(Some)
                .map_err(|_| self.wrong(key, "a string")),
            Err(_) => Err(self.wrong(key, "a readable value")),
        }
    }

    fn required_text(&self, key: &str) -> Result<String, SheetError> {
        self.text(key)?.ok_or_else(|| SheetError::MissingKey {
            key: format!("{}.{key}", self.prefix),
        })
    }

    fn int(&self, key: &str) -> Result<Option<i64>, SheetError> {
        match scalar(self.doc, self.obj, key) {
            None if matches!(self.doc.get(self.obj, key), Ok(None)) => Ok(None),
            Some(ScalarValue::Int(n)) => Ok(Some(n)),
            Some(ScalarValue::Uint(n)) => i64::try_from(n)
                .map(Some)
                .map_err(|_| self.wrong(key, "an integer")),
            _ => Err(self.wrong(key, "an integer")),
        }
    }

    fn required_int(&self, key: &str) -> Result<i64, SheetError> {
        self.int(key)?.ok_or_else(|| SheetError::MissingKey {
            key: format!("{}.{key}", self.prefix),
        })
    }

    fn code<T>(
        &self,
        key: &str,
        parse: fn(&str) -> Option<T>,
        expected: &'static str,
    ) -> Result<Option<T>, SheetError> {
        match self.text(key)? {
            None => Ok(None),
            Some(code) => parse(&code)
                .map(Some)
                .ok_or_else(|| self.wrong(key, expected)),
        }
    }

    fn date(&self, key: &str) -> Result<Option<String>, SheetError> {
        match self.text(key)? {
            Some(date) if !is_date(&date) => Err(self.wrong(key, "a date written YYYY-MM-DD")),
            other => Ok(other),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, SheetError> {
        let list = match self.doc.get(self.obj, key) {
            Ok(Some((Value::Object(ObjType::List), list))) => list,
            Ok(None) => {
                return Err(SheetError::MissingKey {
                    key: format!("{}.{key}", self.prefix),
                });
            }
            _ => return Err(self.wrong(key, "a list of strings")),
        };
        let mut out = Vec::new();
        for item in self.doc.list_range(&list, ..) {
            match item.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                    out.push(s.into_owned())
                }
                _ => return Err(self.wrong(key, "a list of strings")),
            }
        }
        Ok(out)
    }
}

fn read_review(doc: &Automerge, obj: &ObjId, code: &str) -> Result<Review, SheetError> {
    let entry = Entry {
        doc,
        obj,
        prefix: format!("{REVIEW_PREFIX}{code}"),
    };
    Ok(Review {
        municipality: code.to_owned(),
        linked_ms: entry.required_int(rkey::LINKED_MS)?,
        decision: entry.code(rkey::DECISION, Decision::from_code, "a 認定結果 code")?,
        reason: entry.text(rkey::REASON)?,
        valid_from: entry.date(rkey::VALID_FROM)?,
        valid_to: entry.date(rkey::VALID_TO)?,
        research_consent: entry.code(
            rkey::RESEARCH_CONSENT,
            ResearchConsent::from_code,
            "a 研究利用の同意 code",
        )?,
        income: entry.code(rkey::INCOME, IncomeCategory::from_code, "a 所得区分 code")?,
        income_special: entry.code(
            rkey::INCOME_SPECIAL,
            IncomeSpecial::from_code,
            "a 所得区分 special-row code",
        )?,
        decided_ms: entry.int(rkey::DECIDED_MS)?,
        reviewer: entry.text(rkey::REVIEWER)?,
    })
}

fn read_inquiry(doc: &Automerge, obj: &ObjId, id: &str) -> Result<Inquiry, SheetError> {
    let entry = Entry {
        doc,
        obj,
        prefix: format!("{INQUIRY_PREFIX}{id}"),
    };
    let asked_heads = entry
        .strings(ikey::ASKED_HEADS)?
        .iter()
        .map(|text| {
            text.parse::<ChangeHash>()
                .map_err(|_| entry.wrong(ikey::ASKED_HEADS, "a list of change hashes"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Inquiry {
        id: id.to_owned(),
        municipality: entry.required_text(ikey::MUNICIPALITY)?,
        fields: entry.strings(ikey::FIELDS)?,
        question: entry.required_text(ikey::QUESTION)?,
        asked_by: entry.required_text(ikey::ASKED_BY)?,
        asked_ms: entry.required_int(ikey::ASKED_MS)?,
        asked_heads,
        state: entry
            .code(
                ikey::STATE,
                InquiryState::from_code,
                "an inquiry state code",
            )?
            .ok_or_else(|| SheetError::MissingKey {
                key: format!("{INQUIRY_PREFIX}{id}.{}", ikey::STATE),
            })?,
        answer: entry.text(ikey::ANSWER)?,
        answered_by: entry.text(ikey::ANSWERED_BY)?,
        answered_ms: entry.int(ikey::ANSWERED_MS)?,
        closed_ms: entry.int(ikey::CLOSED_MS)?,
    })
}

/// Whether `text` is a date written YYYY-MM-DD with a month 01–12 and a day 01–31.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) {
        return false;
    }
    if !digits(8..10) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Author, NodeId, SheetId};
    use crate::sheet::NewSheet;

    const HOSPITAL: NodeId = NodeId([0x11; 16]);
    const CITY: NodeId = NodeId([0x33; 16]);

    fn edit(node: NodeId, user: u64, at_ms: i64) -> Edit<'static> {
        Edit {
            author: Author { node, user },
            at_ms,
            message: "",
        }
    }

    fn sheet() -> Sheet {
        let mut sheet = Sheet::new(
            NewSheet {
                id: SheetId::random(),
                form_id: "f".to_owned(),
                form_version: "1".to_owned(),
                kokuji: 6,
                eda: 0,
                disease: "パーキンソン病".to_owned(),
                institution: "1312345678".to_owned(),
                doctor: Some(1),
                carried_from: None,
                created_ms: 1,
            },
            edit(HOSPITAL, 1, 1),
        );
        let mut values = BTreeMap::new();
        values.insert("q1".to_owned(), Some("mg".to_owned()));
        sheet.set_fields(&values, edit(HOSPITAL, 1, 2));
        sheet
    }

    fn decided() -> Review {
        Review {
            decision: Some(Decision::Approved),
            valid_from: Some("2026-04-01".to_owned()),
            valid_to: Some("2027-03-31".to_owned()),
            research_consent: Some(ResearchConsent::Given),
            income: Some(IncomeCategory::GeneralI),
            income_special: Some(IncomeSpecial::HighCostLongTerm),
            decided_ms: Some(30),
            reviewer: Some("審査 花子".to_owned()),
            ..Review::linked("131016", 10)
        }
    }

    #[test]
    fn a_sheet_without_reviews_has_none_and_a_recorded_review_round_trips() {
        let mut sheet = sheet();
        assert!(sheet.reviews().is_empty());
        assert!(sheet.inquiries().is_empty());
        assert!(
            sheet
                .set_review(&Review::linked("131016", 10), edit(CITY, 5, 10))
                .expect("valid")
        );
        assert!(
            !sheet
                .set_review(&Review::linked("131016", 10), edit(CITY, 5, 11))
                .expect("valid"),
            "the same review writes nothing"
        );
        assert!(
            sheet
                .set_review(&decided(), edit(CITY, 5, 30))
                .expect("valid")
        );
        let loaded = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(loaded.review("131016"), Some(decided()));
        assert_eq!(loaded.reviews().len(), 1);
        let last = loaded.history().pop().expect("history");
        assert_eq!(
            last.author,
            Some(Author {
                node: CITY,
                user: 5
            })
        );
        assert!(last.reviews.contains(&"131016.decision".to_owned()));
        assert!(!last.touches_sheet());
        assert!(last.changed.is_empty());
        // Clearing a value removes it.
        let mut cleared = decided();
        cleared.income_special = None;
        assert!(
            sheet
                .set_review(&cleared, edit(CITY, 5, 40))
                .expect("valid")
        );
        assert_eq!(sheet.review("131016").expect("kept").income_special, None);
    }

    #[test]
    fn codes_and_labels_are_stable() {
        assert_eq!(Decision::Rejected.code(), "rejected");
        assert_eq!(Decision::Rejected.label(), "不認定");
        assert_eq!(
            IncomeCategory::from_code("teishotoku_2"),
            Some(IncomeCategory::LowII)
        );
        assert_eq!(IncomeCategory::LowII.label(), "低所得Ⅱ");
        assert_eq!(IncomeCategory::ALL.len(), 6);
        assert_eq!(IncomeSpecial::Ventilator.label(), "人工呼吸器等装着者");
        assert_eq!(Decision::from_code("認定"), None);
    }

    #[test]
    fn a_review_with_a_bad_date_or_code_is_refused() {
        let mut sheet = sheet();
        let mut bad = decided();
        bad.valid_to = Some("2027/03/31".to_owned());
        assert!(matches!(
            sheet.set_review(&bad, edit(CITY, 5, 30)),
            Err(SheetError::InvalidReview { .. })
        ));
        let mut dotted = decided();
        dotted.municipality = "13.1".to_owned();
        assert!(sheet.set_review(&dotted, edit(CITY, 5, 30)).is_err());
        // A document whose review holds an unknown code does not load.
        sheet
            .set_review(&decided(), edit(CITY, 5, 30))
            .expect("valid");
        let obj = match sheet.doc.get(ROOT, "review.131016") {
            Ok(Some((_, obj))) => obj,
            _ => panic!("review map"),
        };
        sheet.write(edit(CITY, 5, 31), |tx| tx.put(&obj, "decision", "maybe"));
        assert!(matches!(
            Sheet::load(&sheet.save()),
            Err(SheetError::WrongType { key, .. }) if key == "review.131016.decision"
        ));
    }

    #[test]
    fn an_inquiry_is_asked_answered_and_closed_with_the_changes_since_it() {
        let mut sheet = sheet();
        let asked = sheet
            .ask(
                NewInquiry {
                    id: "i1".to_owned(),
                    municipality: "131016".to_owned(),
                    fields: vec!["q1".to_owned()],
                    question: "検査値の単位を確認してください".to_owned(),
                    asked_by: "審査 花子".to_owned(),
                },
                edit(CITY, 5, 100),
            )
            .expect("asked");
        assert_eq!(asked.state, InquiryState::Open);
        // At the hospital: the copy arrives, the doctor edits and answers.
        let mut hospital = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(hospital.inquiries(), vec![asked.clone()]);
        let mut values = BTreeMap::new();
        values.insert("q1".to_owned(), Some("mg/dL".to_owned()));
        hospital.set_fields(&values, edit(HOSPITAL, 1, 200));
        assert!(
            hospital
                .answer(
                    "i1",
                    "単位を修正しました",
                    "医師 太郎",
                    edit(HOSPITAL, 1, 210)
                )
                .expect("answered")
        );
        let answer_entry = hospital.history().pop().expect("history");
        assert!(answer_entry.inquiries.contains(&"i1.answer".to_owned()));
        assert!(!answer_entry.touches_sheet());
        // Back at the municipality.
        sheet.merge(&mut hospital).expect("merges");
        let inquiry = sheet.inquiry("i1").expect("present");
        assert_eq!(inquiry.state, InquiryState::Answered);
        assert_eq!(inquiry.answer.as_deref(), Some("単位を修正しました"));
        assert_eq!(inquiry.answered_ms, Some(210));
        let diff = sheet
            .diff(&inquiry.asked_heads, &sheet.heads())
            .expect("known heads");
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].field, "q1");
        assert_eq!(diff[0].before.as_deref(), Some("mg"));
        assert_eq!(diff[0].after.as_deref(), Some("mg/dL"));
        assert!(
            sheet
                .close_inquiry("i1", edit(CITY, 5, 300))
                .expect("closes")
        );
        assert!(
            !sheet
                .close_inquiry("i1", edit(CITY, 5, 301))
                .expect("closed")
        );
        assert!(matches!(
            sheet.answer("i1", "追記", "医師 太郎", edit(HOSPITAL, 1, 310)),
            Err(SheetError::InvalidInquiry { .. })
        ));
        let states: Vec<Vec<String>> = sheet
            .history()
            .iter()
            .filter(|e| !e.inquiries.is_empty())
            .map(|e| e.inquiries.clone())
            .collect();
        assert_eq!(states.len(), 3, "asked, answered, closed: {states:?}");
        assert!(states[0].contains(&"i1.question".to_owned()));
        assert!(states[2].contains(&"i1.closed_ms".to_owned()));
        let loaded = Sheet::load(&sheet.save()).expect("loads");
        assert_eq!(
            loaded.inquiry("i1").expect("kept").state,
            InquiryState::Closed
        );
    }

    #[test]
    fn an_inquiry_needs_a_field_and_a_question() {
        let mut sheet = sheet();
        let ask = |fields: Vec<String>, question: &str| NewInquiry {
            id: "i".to_owned(),
            municipality: "131016".to_owned(),
            fields,
            question: question.to_owned(),
            asked_by: "x".to_owned(),
        };
        assert!(sheet.ask(ask(vec![], "q"), edit(CITY, 5, 1)).is_err());
        assert!(
            sheet
                .ask(ask(vec!["q1".to_owned()], "  "), edit(CITY, 5, 1))
                .is_err()
        );
        assert!(
            sheet
                .ask(ask(vec!["q1".to_owned()], "q"), edit(CITY, 5, 1))
                .is_ok()
        );
        assert!(
            sheet
                .ask(ask(vec!["q1".to_owned()], "q"), edit(CITY, 5, 2))
                .is_err()
        );
        assert!(
            sheet
                .answer("nope", "a", "b", edit(HOSPITAL, 1, 3))
                .is_err()
        );
    }

    #[test]
    fn reviews_of_two_municipalities_made_apart_both_survive_a_merge() {
        let mut one = sheet();
        let mut two = Sheet::load(&one.save()).expect("loads");
        one.set_review(&Review::linked("131016", 10), edit(CITY, 5, 10))
            .expect("valid");
        two.set_review(
            &Review::linked("271004", 11),
            edit(NodeId([0x44; 16]), 6, 11),
        )
        .expect("valid");
        one.merge(&mut two).expect("merges");
        let codes: Vec<String> = one.reviews().into_keys().collect();
        assert_eq!(codes, vec!["131016".to_owned(), "271004".to_owned()]);
    }
}
