//! Monitoring every operation (利用状況の監視, M17, M1's monitoring of reuse): detectors read
//! the audit log incrementally and raise alerts into `alerts` for the institution's 責任者 (their
//! node's alerts) and for the ministry on the hub (the hub's alerts).
//!
//! Each rule is a named constant with its threshold and why (docs/security.md, "Monitoring").
//! A detector counts what one subject (a user of this node, or at the hub an asking node and
//! its user) did in one window; when the count reaches the threshold it raises one alert for
//! that rule, subject and window, and later scans of the same window only update its count.
//!
//! Must never: put personal data in an alert (ids and counts only), block or slow the action it
//! watches (it reads the log after the fact, on its own schedule), or change the audit log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::accounts::policy::{Action, Principal, Target, authorize};
use crate::audit;
use crate::{Node, Result};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Japan Standard Time is UTC+9 all year (no daylight saving).
const JST_MS: i64 = 9 * HOUR_MS;

/// One user opening many distinct patients' sheets (閲覧・印刷・出力) in one Japanese day:
/// raised at **200** distinct sheets. Why: a large city's ~550 renewals a working day are
/// shared by several reviewers (under 100 each, docs/security.md "Rate limits"); the largest
/// hospital registers about 20,000 sheets a year, at most ~500 a day in the renewal season,
/// shared by its doctors and clerks. 200 different patients in a day is more than one person's
/// work anywhere; below it, a busy reviewer or clerk never raises it.
pub const MANY_PATIENTS_PER_DAY: i64 = 200;

/// Failed access-key resolutions (`not_found`, `rate_limited`) by one user in one Japanese day:
/// raised at **20**. Why: a mistyped key is caught by its check digit at the node and never
/// counts; only a wrong birth date or a wrong but valid key does. A reviewer resolves under 100
/// keys a day, so 20 failures is a fifth of a full day failing, and the guessing insider of
/// docs/security.md makes 100 failures a day at the user limit.
pub const FAILED_RESOLUTIONS_PER_USER_DAY: i64 = 20;

/// Failed resolutions asked by one node at the hub in one Japanese day: raised at **100**.
/// Why: a tenth of the node limit (1,000 a day); the guessing insider at the node limit leaves
/// 1,000 "not found" entries a day, so the first day of guessing raises it.
pub const FAILED_RESOLUTIONS_PER_NODE_DAY: i64 = 100;

/// Unusual hours: **22:00–06:00 JST** (UTC+9, no daylight saving).
pub const NIGHT_FROM_HOUR_JST: i64 = 22;
/// The end of the unusual hours (exclusive), JST.
pub const NIGHT_UNTIL_HOUR_JST: i64 = 6;
/// Patient data of **5** distinct sheets touched (opened, printed, exported, edited, created,
/// reviewed) by one user in one night (22:00–06:00 JST). Why: forms are written and reviewed in
/// office hours; a doctor finishing their own one or two forms after the ward round stays
/// below, five different patients at night is not finishing a form.
pub const NIGHT_SHEETS: i64 = 5;

/// Bulk exports by one user in one Japanese day: **20** files (research export downloads, with
/// their CSV; データ出力 of a sheet as JSON or XML). Why: the ministry downloads one export's few files at a time
/// and a hospital exports a sheet's XML for a transfer now and then; twenty files a day is
/// collecting data, not answering a question.
pub const EXPORTS_PER_DAY: i64 = 20;

/// A research export (`nsdb research export`) of at least **1,000** sheets raises an alert by
/// itself. Why: it is the one act that writes the hub's data out in bulk and it is rare (a few
/// planned exports a year), so every large one is shown for the ministry to confirm it was
/// planned; a test export of a few sheets stays below.
pub const RESEARCH_EXPORT_SHEETS: i64 = 1_000;

/// 更新登録 from another institution's sheet (resolved by its access key, M1's reuse) by one
/// user in one Japanese day: raised at **1**, every such day. Why: a hospital resolves keys only
/// for patients who transfer to it, a few a month; each reuse of another hospital's record is
/// what M1 says must be monitored, so the 責任者 confirms each day that had one.
pub const OTHER_INSTITUTION_RENEWALS_PER_DAY: i64 = 1;

/// The ministry opened an identified sheet (an exceptional act, with a reason): raised
/// immediately, **1** per grant.
pub const IDENTIFIED_ACCESS: i64 = 1;

/// An audit chain that contradicts the checkpoint the hub holds (rewritten, its tail cut, or
/// restored from a backup; `sync_service::anchor`): raised at once, **1** per node and day, at
/// the node for its 責任者 and at the hub for the ministry.
pub const AUDIT_CHAIN: i64 = 1;

/// At most this many audit entries are examined per scan, so one scan's transaction stays short;
/// the next scan continues where it stopped.
pub const SCAN_BATCH: i64 = 50_000;

/// How far back the first scan of a node reads: **7 days** (entries appended before that are
/// never examined, so upgrading a node with a long audit log raises no stale alerts).
pub const FIRST_SCAN_LOOKBACK_MS: i64 = 7 * DAY_MS;

/// A detector rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    ManyPatients,
    FailedResolutionsUser,
    FailedResolutionsNode,
    NightAccess,
    BulkExport,
    ResearchExport,
    OtherInstitutionRenewal,
    IdentifiedAccess,
    AuditChain,
}

impl Rule {
    pub const ALL: [Rule; 9] = [
        Rule::ManyPatients,
        Rule::FailedResolutionsUser,
        Rule::FailedResolutionsNode,
        Rule::NightAccess,
        Rule::BulkExport,
        Rule::ResearchExport,
        Rule::OtherInstitutionRenewal,
        Rule::IdentifiedAccess,
        Rule::AuditChain,
    ];

    /// The rule's id in `alerts.rule`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::ManyPatients => "many_patients",
            Rule::FailedResolutionsUser => "failed_resolutions_user",
            Rule::FailedResolutionsNode => "failed_resolutions_node",
            Rule::NightAccess => "night_access",
            Rule::BulkExport => "bulk_export",
            Rule::ResearchExport => "research_export",
            Rule::OtherInstitutionRenewal => "other_institution_renewal",
            Rule::IdentifiedAccess => "identified_access",
            Rule::AuditChain => "audit_chain",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == s)
    }

    /// The rule as the 利用状況の監視 screen names it.
    pub fn label(self) -> &'static str {
        match self {
            Rule::ManyPatients => "多数の患者の臨個票の閲覧",
            Rule::FailedResolutionsUser => "アクセスキー照会の失敗が多い（利用者）",
            Rule::FailedResolutionsNode => "アクセスキー照会の失敗が多い（ノード）",
            Rule::NightAccess => "時間外（22時〜6時）の患者情報の利用",
            Rule::BulkExport => "大量の出力",
            Rule::ResearchExport => "研究用データの一括出力",
            Rule::OtherInstitutionRenewal => "他院の臨個票からの更新登録",
            Rule::IdentifiedAccess => "厚生労働省による識別情報の閲覧（理由付き）",
            Rule::AuditChain => {
                "監査ログがハブの記録と一致しない（改ざん・末尾の削除、またはバックアップからの復元）"
            }
        }
    }

    /// The count at which the rule raises an alert.
    pub fn threshold(self) -> i64 {
        match self {
            Rule::ManyPatients => MANY_PATIENTS_PER_DAY,
            Rule::FailedResolutionsUser => FAILED_RESOLUTIONS_PER_USER_DAY,
            Rule::FailedResolutionsNode => FAILED_RESOLUTIONS_PER_NODE_DAY,
            Rule::NightAccess => NIGHT_SHEETS,
            Rule::BulkExport => EXPORTS_PER_DAY,
            Rule::ResearchExport => RESEARCH_EXPORT_SHEETS,
            Rule::OtherInstitutionRenewal => OTHER_INSTITUTION_RENEWALS_PER_DAY,
            Rule::IdentifiedAccess => IDENTIFIED_ACCESS,
            Rule::AuditChain => AUDIT_CHAIN,
        }
    }

    /// The audit actions the rule reads.
    fn actions(self) -> &'static [&'static str] {
        match self {
            Rule::ManyPatients => &[
                "sheet_view",
                "sheet_print",
                "sheet_export",
                "sheet_export_xml",
                "review_view",
            ],
            Rule::FailedResolutionsUser | Rule::FailedResolutionsNode => &["key_resolve"],
            Rule::NightAccess => &[
                "sheet_view",
                "sheet_print",
                "sheet_export",
                "sheet_export_xml",
                "sheet_edit",
                "sheet_create",
                "review_view",
            ],
            Rule::BulkExport => &["research_download", "sheet_export", "sheet_export_xml"],
            Rule::ResearchExport => &["research_export"],
            Rule::OtherInstitutionRenewal => &["sheet_carry_forward"],
            Rule::IdentifiedAccess | Rule::AuditChain => &[],
        }
    }
}

/// Whom an alert is about: ids only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// A user of this node.
    User(u64),
    /// At the hub: a user (by id on their node) of an asking node.
    RemoteUser { node: String, user: u64 },
    /// At the hub: an asking node.
    Node(String),
    /// This node itself (an act of its operator, such as a research export).
    ThisNode,
}

impl Subject {
    fn key(&self) -> String {
        match self {
            Subject::User(u) => format!("u:{u}"),
            Subject::RemoteUser { node, user } => format!("n:{node}:u:{user}"),
            Subject::Node(n) => format!("n:{n}"),
            Subject::ThisNode => "node".into(),
        }
    }
}

/// The Japanese day (00:00–24:00 JST) holding `at_ms`: (start, end) in unix ms.
pub fn jst_day(at_ms: i64) -> (i64, i64) {
    let start = (at_ms + JST_MS).div_euclid(DAY_MS) * DAY_MS - JST_MS;
    (start, start + DAY_MS)
}

/// The night (22:00–06:00 JST) holding `at_ms`, or None in the daytime.
pub fn jst_night(at_ms: i64) -> Option<(i64, i64)> {
    let from = NIGHT_FROM_HOUR_JST * HOUR_MS - JST_MS;
    let start = (at_ms - from).div_euclid(DAY_MS) * DAY_MS + from;
    let end = start + (24 - NIGHT_FROM_HOUR_JST + NIGHT_UNTIL_HOUR_JST) * HOUR_MS;
    (at_ms < end).then_some((start, end))
}

/// One audit entry as a detector sees it.
struct Seen {
    seq: i64,
    at: i64,
    user: Option<u64>,
    action: String,
    target: Option<String>,
    detail: Option<String>,
}

fn field<'a>(detail: &'a str, name: &str) -> Option<&'a str> {
    detail
        .split(' ')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
}

/// What one entry contributes to `rule`: the subjects, the window and the item counted (a
/// sheet id for distinct counts, else the seq). None when the rule does not count the entry.
fn contributions(c: &Connection, rule: Rule, e: &Seen) -> rusqlite::Result<Vec<Contribution>> {
    if !rule.actions().contains(&e.action.as_str()) {
        return Ok(Vec::new());
    }
    let day = jst_day(e.at);
    let each = |subject: Subject, window: (i64, i64), item: String| Contribution {
        subject,
        window,
        item,
        weight: 1,
    };
    Ok(match rule {
        Rule::ManyPatients => match (e.user, &e.target) {
            (Some(u), Some(t)) => vec![each(Subject::User(u), day, t.clone())],
            _ => vec![],
        },
        Rule::NightAccess => match (e.user, &e.target, jst_night(e.at)) {
            (Some(u), Some(t), Some(night)) => vec![each(Subject::User(u), night, t.clone())],
            _ => vec![],
        },
        Rule::FailedResolutionsUser | Rule::FailedResolutionsNode => {
            let detail = e.detail.as_deref().unwrap_or("");
            if !matches!(field(detail, "result"), Some("not_found" | "rate_limited")) {
                return Ok(vec![]);
            }
            let item = e.seq.to_string();
            match (e.user, field(detail, "node"), rule) {
                // Asked at this node (or a clinic's user on the hub): the user.
                (Some(u), _, Rule::FailedResolutionsUser) => {
                    vec![each(Subject::User(u), day, item)]
                }
                // Answered at the hub for an asking node's user.
                (None, Some(node), Rule::FailedResolutionsUser) => {
                    match field(detail, "user").and_then(|u| u.parse().ok()) {
                        Some(user) => vec![each(
                            Subject::RemoteUser {
                                node: node.to_string(),
                                user,
                            },
                            day,
                            item,
                        )],
                        None => vec![],
                    }
                }
                (None, Some(node), Rule::FailedResolutionsNode) => {
                    vec![each(Subject::Node(node.to_string()), day, item)]
                }
                _ => vec![],
            }
        }
        Rule::BulkExport => match e.user {
            Some(u) => vec![each(Subject::User(u), day, e.seq.to_string())],
            None => vec![],
        },
        Rule::ResearchExport => {
            let sheets: i64 = e
                .detail
                .as_deref()
                .and_then(|d| field(d, "sheets"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            vec![Contribution {
                subject: Subject::ThisNode,
                window: (e.at, e.at + 1),
                item: e.seq.to_string(),
                weight: sheets,
            }]
        }
        Rule::OtherInstitutionRenewal => {
            let (Some(u), Some(source), Some(new)) = (e.user, &e.target, &e.detail) else {
                return Ok(vec![]);
            };
            // The entry names the source sheet and the new one; the pull is of another
            // institution's record when their institutions differ.
            let other: bool = c
                .query_row(
                    "SELECT s.institution <> n.institution FROM sheets s, sheets n
                     WHERE s.id = ?1 AND n.id = ?2",
                    [source, new],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(false);
            if other {
                vec![each(Subject::User(u), day, e.seq.to_string())]
            } else {
                vec![]
            }
        }
        Rule::IdentifiedAccess | Rule::AuditChain => vec![],
    })
}

struct Contribution {
    subject: Subject,
    window: (i64, i64),
    item: String,
    weight: i64,
}

fn read_seen(r: &rusqlite::Row<'_>) -> rusqlite::Result<Seen> {
    Ok(Seen {
        seq: r.get(0)?,
        at: r.get(1)?,
        user: r.get::<_, Option<i64>>(2)?.map(|u| u as u64),
        action: r.get(3)?,
        target: r.get(4)?,
        detail: r.get(5)?,
    })
}

/// Raises (inserts) or updates the one alert of `rule`, `subject` and `window`. Returns whether
/// a new alert was raised.
#[allow(clippy::too_many_arguments)]
fn raise_or_update(
    c: &Connection,
    rule: Rule,
    subject: &Subject,
    window: (i64, i64),
    count: i64,
    first_seq: i64,
    last_seq: i64,
    now: i64,
) -> rusqlite::Result<bool> {
    let (user, node, remote) = match subject {
        Subject::User(u) => (Some(*u as i64), None, None),
        Subject::RemoteUser { node, user } => (None, Some(node.clone()), Some(*user as i64)),
        Subject::Node(n) => (None, Some(n.clone()), None),
        Subject::ThisNode => (None, None, None),
    };
    let existing: Option<i64> = c
        .query_row(
            "SELECT id FROM alerts WHERE rule = ?1 AND subject = ?2 AND window_start = ?3",
            params![rule.id(), subject.key(), window.0],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        c.execute(
            "UPDATE alerts SET count = ?2, first_seq = ?3, last_seq = ?4 WHERE id = ?1",
            params![id, count, first_seq, last_seq],
        )?;
        return Ok(false);
    }
    c.execute(
        "INSERT INTO alerts (rule, subject, user_id, node, remote_user, window_start, window_end,
             count, first_seq, last_seq, raised_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            rule.id(),
            subject.key(),
            user,
            node,
            remote,
            window.0,
            window.1,
            count,
            first_seq,
            last_seq,
            now
        ],
    )?;
    Ok(true)
}

/// Raises an alert at once, for an act that is itself the event (the ministry's identified
/// access) or a finding made outside the audit log's scan (an audit chain contradicting its
/// anchor): one per `rule`, `subject` and `window`. Call inside the transaction that records
/// the act, after its audit entry.
pub fn raise_now(
    c: &Connection,
    rule: Rule,
    subject: &Subject,
    window: (i64, i64),
    now: i64,
) -> rusqlite::Result<()> {
    let seq: i64 = c.query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| r.get(0))?;
    raise_or_update(c, rule, subject, window, 1, seq, seq, now)?;
    Ok(())
}

/// Records an audit chain found contradicting its anchor or failing its check: the audit entry
/// `action` (`target`: the node whose chain it is, hex id, at the hub; none for this node's own
/// chain; `detail`: seqs and a kind only) and the [`Rule::AuditChain`] alert about that node, or
/// about this node, in the Japanese day of `now`. Call inside a write transaction.
pub fn chain_finding(
    c: &Connection,
    action: &str,
    node: Option<&str>,
    detail: &str,
    now: i64,
) -> rusqlite::Result<()> {
    audit::append(
        c,
        audit::Entry {
            at_ms: now,
            user: None,
            action,
            target: node,
            detail: Some(detail),
        },
    )?;
    let subject = node.map_or(Subject::ThisNode, |n| Subject::Node(n.to_string()));
    raise_now(c, Rule::AuditChain, &subject, jst_day(now), now)
}

/// Records what `rule` counts of one entry for `subject` in `window` (`monitor_counts`: one
/// row per distinct item, so a window's count is a lookup, however long the window).
fn count_item(
    c: &Connection,
    rule: Rule,
    contribution: &Contribution,
    seq: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT OR IGNORE INTO monitor_counts
             (rule, subject, window_start, window_end, item, weight, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        rule.id(),
        contribution.subject.key(),
        contribution.window.0,
        contribution.window.1,
        contribution.item,
        contribution.weight,
        seq
    ])?;
    Ok(())
}

/// What `rule` counted for `subject` in the window starting at `start`: (count, first seq,
/// last seq). The count is the number of distinct items, or their weight for a research
/// export (its sheets).
fn counted(
    c: &Connection,
    rule: Rule,
    subject: &Subject,
    start: i64,
) -> rusqlite::Result<(i64, i64, i64)> {
    let measure = if rule == Rule::ResearchExport {
        "coalesce(sum(weight), 0)"
    } else {
        "count(*)"
    };
    c.prepare_cached(&format!(
        "SELECT {measure}, coalesce(min(seq), 0), coalesce(max(seq), 0) FROM monitor_counts
         WHERE rule = ?1 AND subject = ?2 AND window_start = ?3"
    ))?
    .query_row(params![rule.id(), subject.key(), start], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

/// Windows that ended this long ago are closed: their counts are dropped (their alerts stay).
const CLOSED_AFTER_MS: i64 = DAY_MS;

/// Reads the audit entries after the last one examined (at most [`SCAN_BATCH`]), adds what
/// each rule counts of them to their windows, and raises or updates the alerts of the windows
/// they touched. Returns the number of alerts raised (new ones). The work is proportional to
/// the new entries, not to the log or the windows. Call inside a write transaction.
pub fn scan(c: &Connection, now: i64) -> rusqlite::Result<usize> {
    let progress: Option<i64> = c
        .query_row(
            "SELECT last_seq FROM monitor_progress WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    // The first scan of a node that has kept an audit log for a while starts a week back: the
    // detectors watch from then on, and older history raises nothing.
    let last = match progress {
        Some(last) => last,
        None => c.query_row(
            "SELECT coalesce(max(seq), 0) FROM audit WHERE at < ?1",
            [now - FIRST_SCAN_LOOKBACK_MS],
            |r| r.get(0),
        )?,
    };
    let entries = c
        .prepare(
            "SELECT seq, at, user_id, action, target, detail FROM audit
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![last, SCAN_BATCH], read_seen)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some(upto) = entries.last().map(|e| e.seq) else {
        return Ok(0);
    };
    let mut touched: BTreeMap<(Rule, Subject, (i64, i64)), ()> = BTreeMap::new();
    for e in &entries {
        for rule in Rule::ALL {
            for contribution in contributions(c, rule, e)? {
                count_item(c, rule, &contribution, e.seq)?;
                touched.insert((rule, contribution.subject, contribution.window), ());
            }
        }
    }
    let mut raised = 0;
    for (rule, subject, window) in touched.into_keys() {
        let (count, first_seq, last_seq) = counted(c, rule, &subject, window.0)?;
        if count >= rule.threshold()
            && raise_or_update(c, rule, &subject, window, count, first_seq, last_seq, now)?
        {
            raised += 1;
        }
    }
    c.execute(
        "DELETE FROM monitor_counts WHERE window_end < ?1",
        [now - CLOSED_AFTER_MS],
    )?;
    c.execute(
        "INSERT INTO monitor_progress (id, last_seq) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq",
        [upto],
    )?;
    Ok(raised)
}

/// The number of alerts nobody has acknowledged yet.
pub fn open_count(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM alerts WHERE acknowledged_at IS NULL",
        [],
        |r| r.get(0),
    )
}

/// The node's count of unacknowledged alerts, for the header's badge without a database read
/// per page: refreshed by every scan and acknowledgement; -1 until the first.
#[derive(Debug, Default)]
pub struct OpenAlerts(AtomicI64);

impl OpenAlerts {
    /// The count, or None before the first scan.
    pub fn get(&self) -> Option<u64> {
        u64::try_from(self.0.load(Ordering::Relaxed) - 1).ok()
    }

    fn set(&self, n: i64) {
        self.0.store(n + 1, Ordering::Relaxed);
    }
}

/// One alert as the 利用状況の監視 screen lists it: ids, counts and times only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    /// The rule's name in Japanese.
    pub rule_label: String,
    /// A user of this node (id and login ID), when the subject is one.
    pub user_id: Option<u64>,
    pub login: Option<String>,
    /// At the hub: the asking node (hex id) and the user's id there.
    pub node: Option<String>,
    pub remote_user: Option<u64>,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub count: i64,
    /// The rule's threshold, for the screen's "N件（基準 M件）".
    pub threshold: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub raised_at_ms: i64,
    pub acknowledged_by: Option<u64>,
    pub acknowledged_at_ms: Option<i64>,
}

/// How many alerts the list shows (newest first).
pub const LIST_LIMIT: u32 = 500;

fn list(c: &Connection) -> rusqlite::Result<Vec<Alert>> {
    let mut st = c.prepare(
        "SELECT a.id, a.rule, a.user_id, u.login, a.node, a.remote_user, a.window_start,
             a.window_end, a.count, a.first_seq, a.last_seq, a.raised_at, a.acknowledged_by,
             a.acknowledged_at
         FROM alerts a LEFT JOIN users u ON u.id = a.user_id
         ORDER BY a.acknowledged_at IS NOT NULL, a.raised_at DESC, a.id DESC LIMIT ?1",
    )?;
    st.query_map([LIST_LIMIT], |r| {
        let rule: String = r.get(1)?;
        let known = Rule::parse(&rule);
        Ok(Alert {
            id: r.get(0)?,
            rule_label: known.map(Rule::label).unwrap_or("").to_string(),
            threshold: known.map(Rule::threshold).unwrap_or(0),
            rule,
            user_id: r.get::<_, Option<i64>>(2)?.map(|u| u as u64),
            login: r.get(3)?,
            node: r.get(4)?,
            remote_user: r.get::<_, Option<i64>>(5)?.map(|u| u as u64),
            window_start_ms: r.get(6)?,
            window_end_ms: r.get(7)?,
            count: r.get(8)?,
            first_seq: r.get(9)?,
            last_seq: r.get(10)?,
            raised_at_ms: r.get(11)?,
            acknowledged_by: r.get::<_, Option<i64>>(12)?.map(|u| u as u64),
            acknowledged_at_ms: r.get(13)?,
        })
    })?
    .collect()
}

impl Node {
    /// Runs the detectors over the audit entries appended since the last run (`nsdb serve`
    /// calls it every minute) and refreshes the header's count. Returns the alerts raised.
    pub async fn scan_audit(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let (raised, open) = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let raised = scan(&tx, now)?;
                let open = open_count(&tx)?;
                tx.commit()?;
                Ok::<_, crate::Error>((raised, open))
            })
            .await?;
        self.open_alerts.set(open);
        if raised > 0 {
            tracing::warn!(target: "nsdb::monitor", raised, open, "unusual use: alerts raised");
        }
        Ok(raised)
    }

    /// The unacknowledged alerts' count for the header's badge, when known.
    pub fn open_alert_count(&self) -> Option<u64> {
        self.open_alerts.get()
    }

    /// The 利用状況の監視 list: this node's alerts, unacknowledged first, newest first. Allowed to
    /// the 責任者 and the ministry (`Action::MonitorUse`); audited (`alert_list`).
    pub async fn alerts(&self, p: &Principal) -> Result<Vec<Alert>> {
        authorize(p, Action::MonitorUse, Target::None)?;
        let (uid, now) = (p.user_id, self.clock.now_ms());
        let (alerts, open) = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let alerts = list(&tx)?;
                audit::record(&tx, now, uid, "alert_list", None, None)?;
                let open = open_count(&tx)?;
                tx.commit()?;
                Ok::<_, crate::Error>((alerts, open))
            })
            .await?;
        self.open_alerts.set(open);
        Ok(alerts)
    }

    /// 確認済み: marks alert `id` acknowledged by `p` (audited `alert_acknowledge`, target the
    /// alert's id). Acknowledging twice keeps the first. Errors: `Invalid` for an unknown id.
    pub async fn acknowledge_alert(&self, p: &Principal, id: i64) -> Result<()> {
        authorize(p, Action::MonitorUse, Target::None)?;
        let (uid, now) = (p.user_id, self.clock.now_ms());
        let open = self
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let known: Option<(Option<i64>, Option<i64>)> = tx
                    .query_row(
                        "SELECT acknowledged_at, user_id FROM alerts WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((already, subject)) = known else {
                    return Ok(Err(crate::Error::Invalid(
                        "その警告は見つかりません。一覧を開き直してください。".into(),
                    )));
                };
                // The person an alert is about never closes it: someone else looks at it.
                if subject == Some(uid as i64) {
                    audit::record(
                        &tx,
                        now,
                        uid,
                        "alert_acknowledge_denied",
                        Some(&id.to_string()),
                        Some("own alert"),
                    )?;
                    tx.commit()?;
                    return Ok(Err(crate::Error::Invalid(
                        "ご自身の利用についての警告は、ご自身では確認済みにできません。別の担当者が確認してください。".into(),
                    )));
                }
                if already.is_none() {
                    tx.execute(
                        "UPDATE alerts SET acknowledged_by = ?2, acknowledged_at = ?3
                         WHERE id = ?1",
                        params![id, uid as i64, now],
                    )?;
                }
                audit::record(
                    &tx,
                    now,
                    uid,
                    "alert_acknowledge",
                    Some(&id.to_string()),
                    None,
                )?;
                let open = open_count(&tx)?;
                tx.commit()?;
                Ok::<_, crate::Error>(Ok(open))
            })
            .await??;
        self.open_alerts.set(open);
        Ok(())
    }

    /// Refreshes the header's count after an alert was raised outside a scan.
    pub(crate) async fn refresh_open_alerts(&self) -> Result<()> {
        let open = self
            .store
            .read(|c| Ok::<_, crate::Error>(open_count(c)?))
            .await?;
        self.open_alerts.set(open);
        Ok(())
    }
}

/// How often `nsdb serve` runs the detectors: every minute.
pub const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs [`Node::scan_audit`] at once and then every [`SCAN_EVERY`] until aborted. A failed
/// scan is logged and tried again at the next tick (it resumes where the last one stopped).
pub fn schedule(node: std::sync::Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SCAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if node.store.damage().is_some() {
                return;
            }
            if let Err(e) = node.scan_audit().await {
                tracing::warn!(target: "nsdb::monitor", error = %e, "the audit log was not scanned");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_japanese_day_and_night_are_cut_in_jst() {
        // 2026-04-01 00:00 JST = 2026-03-31 15:00 UTC.
        let midnight_jst = 1_774_969_200_000;
        assert_eq!(jst_day(midnight_jst), (midnight_jst, midnight_jst + DAY_MS));
        assert_eq!(jst_day(midnight_jst - 1).1, midnight_jst);
        // 23:00 JST and 05:59 JST the next morning are one night; 06:00 and 21:59 are day.
        let night = jst_night(midnight_jst - HOUR_MS).expect("23:00 is night");
        assert_eq!(night.0, midnight_jst - 2 * HOUR_MS);
        assert_eq!(jst_night(midnight_jst + 6 * HOUR_MS - 1), Some(night));
        assert_eq!(jst_night(midnight_jst + 6 * HOUR_MS), None);
        assert_eq!(jst_night(midnight_jst + 22 * HOUR_MS - 1), None);
    }
}
