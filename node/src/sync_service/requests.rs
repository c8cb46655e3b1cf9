//! What a node asks the hub outside sync sessions, over the same QUIC link (a stream whose
//! first frame is a request, see `nsdb_sync::link`): key blocks (リース) and resolution of an
//! access key with the patient's birth date (臨個票連携, 受付).
//!
//! At the hub: [`HubDesk`] answers. A lease is a random free block recorded in `key_leases`
//! (`keys::lease_block`), for hospitals only. A resolution is rate-limited per asking user and
//! per node (`governor`), looks the key and birth date up among registered and approved sheets,
//! and answers either the list row or one single "not found" for an unknown key and a wrong
//! birth date alike, never before [`RESOLUTION_FLOOR`] has passed since the request arrived. On
//! success the hub grants the sheet to the asking node (it arrives by sync) and marks the sheet
//! linked in its document (the source hospital's list shows 自治体連携日 once that syncs back).
//! Every attempt is audited with ids only.
//!
//! At a node: [`ensure_key_reserve`] asks for a block while fewer than `keys::RESERVE` serials
//! are left, and [`resolve`] is the one function the screens and the API call. On the hub the
//! same [`resolve`] serves the users of clinics it holds accounts for (M18): it looks the key
//! up in place with the same per-user and per-institution limits and the same equal-time floor,
//! and records the resolution for the user's clinic only (`resolutions.institution`).
//!
//! Papers (紙の臨個票, `crate::papers`): a municipality sends each pending paper in a request of
//! its own ([`send_papers`], before each session, so one left pending by an outage goes at the
//! next connection) and asks what became of those the hub holds; the hub takes papers from
//! municipalities only, each once by id, and answers only about the asking node's papers.
//!
//! This module must never write a key's digits or a birth date to the audit log or the log.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use nsdb_sync::{Answerer, Author, Edit, NodeId, NodeLink, Peer, PeerRole};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::accounts::policy::{Action, Principal, Target, authorize};
use crate::keys::{self, AccessKey};
use crate::papers;
use crate::sheets::status;
use crate::{Node, audit};

/// The least time a resolution answer takes at the hub, counted from the request's arrival:
/// a found sheet and "not found" (unknown key or wrong birth date) both wait until then, so the
/// time of the answer says nothing about which it was. The lookup itself takes well under this
/// (see `nsdb bench review`).
pub const RESOLUTION_FLOOR: Duration = Duration::from_millis(250);

/// Resolutions one user of a node may ask per day (burst, refilled evenly over the day). See
/// docs/security.md for why.
pub const USER_PER_DAY: u32 = 100;

/// Resolutions one node may ask per day, all its users together.
pub const NODE_PER_DAY: u32 = 1_000;

/// What a node asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Ask {
    /// A key block.
    Lease,
    /// The sheet with this access key (11 digits) and birth date (`YYYY-MM-DD`), for user
    /// `user` (`login`) of the asking node.
    Resolve {
        key: String,
        birth_date: String,
        user: u64,
        login: String,
    },
    /// A scanned paper sheet from a municipality (at most `papers::MAX_PDF_BYTES` of PDF).
    Paper(Box<papers::Outgoing>),
    /// What became of these papers (ids) this node sent.
    PaperStates { ids: Vec<String> },
    /// This hospital's counter per leased block; the hub answers each block's high-water mark
    /// (`super::key_marks`).
    Marks { blocks: Vec<keys::BlockMark> },
    /// The whole stored document of a sheet whose copy here is damaged (`super::refetch`).
    Fetch { sheet: String },
    /// The node's newest signed audit checkpoint, and whether the node was restored from a
    /// backup since it last sent one (`super::anchor`).
    Anchor {
        anchor: super::anchor::Anchor,
        restored: bool,
    },
    /// The node's chain no longer holds the checkpoint at `seq` the hub answered.
    AnchorDiverged { seq: i64 },
    /// A doctor's account record from the municipality that manages it (`super::accounts`).
    Account(Box<crate::accounts::registry::AccountRecord>),
    /// A password set at the asking node for a registry account (Argon2id PHC string, Unix ms).
    AccountPassword {
        account_id: String,
        hash: String,
        set_at: i64,
    },
    /// The account records reaching the asking hospital after the hub's counter `since`; `name`
    /// is the hospital's 医療機関名 as its configuration says (the registry's name for 兼務).
    Accounts {
        since: i64,
        #[serde(default)]
        name: String,
    },
    /// The registry's institution with this 医療機関コード.
    Institution { code: String },
    /// The 兼務 of an account, from the node of its main institution.
    Kenmu {
        account_id: String,
        kenmu: Vec<crate::accounts::registry::Kenmu>,
    },
}

/// What the hub answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Reply {
    Leased {
        block: u32,
    },
    /// No block for this node (not a hospital, or none free); the reason in words.
    NoLease {
        reason: String,
    },
    Found(Box<ResolvedSheet>),
    NotFound,
    RateLimited,
    /// The paper is held at the hub (now or from an earlier request).
    PaperHeld,
    PaperStates(Vec<papers::PaperState>),
    /// The high-water mark of every block leased to the asking node.
    Marks {
        blocks: Vec<keys::BlockMark>,
    },
    /// A sheet's stored document, hex.
    Document {
        doc: String,
    },
    /// The checkpoint is held; the last one the hub held before it from this node.
    Anchored {
        previous: Option<super::anchor::Anchor>,
    },
    /// The account record is held at this version of the hub's counter.
    AccountHeld {
        version: i64,
    },
    /// Account records in the hub's order, up to counter `upto`; `more` when more follow.
    Accounts {
        records: Vec<crate::accounts::registry::AccountRecord>,
        upto: i64,
        more: bool,
    },
    /// An institution of the registry.
    Institution {
        code: String,
        name: String,
    },
    /// An account record as the hub now holds it.
    AccountRecord(Box<crate::accounts::registry::AccountRecord>),
    /// The request could not be read.
    Refused {
        reason: String,
    },
}

/// A sheet found by access key and birth date: the columns of the 臨個票連携 and intake lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResolvedSheet {
    pub sheet_id: String,
    /// The form id (`rinko-006`, `iken-12-04-014`): a 小慢 form is named by its 疾患群・疾病番号,
    /// its 告示番号 being 0. Empty in an answer from a hub of an earlier version.
    #[serde(default)]
    pub form_id: String,
    /// 申請種別: "1" 新規, "2" 更新.
    pub application_type: Option<String>,
    /// 保険者番号
    pub insurer_no: Option<String>,
    /// 被保険者番号
    pub insured_no: Option<String>,
    /// アクセスキー, 11 digits.
    pub access_key: String,
    /// 氏名カナ
    pub name_kana: Option<String>,
    /// 生年月日 `YYYY-MM-DD`
    pub birth_date: Option<String>,
    /// 性別: "1" 男, "2" 女.
    pub sex: Option<String>,
    /// 告示番号
    pub kokuji: u16,
    /// 枝番
    pub eda: u16,
    /// 病名
    pub disease: String,
    /// 指定医氏名 as the doctor recorded it in the sheet.
    pub doctor_name: Option<String>,
    /// 作成年月日 (記載年月日) `YYYY-MM-DD`
    pub written_date: Option<String>,
    /// 自治体連携日 `YYYY-MM-DD`: the sheet's first link.
    pub linked_date: Option<String>,
    /// ステータス: registered or approved.
    pub status: String,
    /// 登録種別: screen, bulk or paper.
    pub registration: String,
    /// 医療機関コード of the hospital that wrote it.
    pub institution: String,
}

/// A successful resolution at this node.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Resolution {
    pub sheet: ResolvedSheet,
    /// When this node resolved it (unix ms).
    pub resolved_at_ms: i64,
    /// Whether the sheet has arrived here by sync (閲覧 shows 同期待ち until then).
    pub arrived: bool,
}

/// Why a resolution gave no sheet. Messages are for the person at the screen.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "ハブ（中央）に接続できないため検索できません。入力した内容はそのままです。しばらくしてからもう一度検索してください。"
    )]
    HubUnreachable,
    #[error(
        "検索の回数が上限に達しました。しばらくしてからもう一度検索してください（利用者ごと1日{USER_PER_DAY}回、この施設で1日{NODE_PER_DAY}回まで）。"
    )]
    RateLimited,
    #[error(
        "このアクセスキーと生年月日に一致する登録済みの臨床調査個人票・医療意見書はありません。紙のアクセスキーと生年月日を確かめてください。"
    )]
    NotFound,
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Node(#[from] crate::Error),
}

impl From<rusqlite::Error> for ResolveError {
    fn from(e: rusqlite::Error) -> Self {
        ResolveError::Node(e.into())
    }
}

/// The node's own link for requests to the hub (beside the sync loop's), set once the node is
/// enrolled. Requests of one node take turns on it (a resolution holds it for the hub's
/// equal-time floor, so a node asks at most about four resolutions a second; its daily limit
/// is far below that). On the hub itself it holds the limits of its own users' resolutions.
#[derive(Default)]
pub struct RequestLink {
    link: tokio::sync::Mutex<Option<NodeLink>>,
    local: LocalLimits,
}

/// On the hub: the daily limits of resolutions by the clinics' users it serves, the same as a
/// node's ([`USER_PER_DAY`] per user, [`NODE_PER_DAY`] per clinic).
struct LocalLimits {
    per_user: DefaultKeyedRateLimiter<u64>,
    per_institution: DefaultKeyedRateLimiter<String>,
}

impl Default for LocalLimits {
    fn default() -> Self {
        LocalLimits {
            per_user: RateLimiter::keyed(per_day(USER_PER_DAY)),
            per_institution: RateLimiter::keyed(per_day(NODE_PER_DAY)),
        }
    }
}

impl std::fmt::Debug for RequestLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestLink")
    }
}

impl RequestLink {
    pub(super) async fn set(&self, link: NodeLink) {
        *self.link.lock().await = Some(link);
    }

    pub(super) async fn ask(&self, ask: &Ask) -> Option<Reply> {
        let body = serde_json::to_vec(ask).ok()?;
        let mut guard = self.link.lock().await;
        let link = guard.as_mut()?;
        match link.request(body).await {
            Ok(answer) => serde_json::from_slice(&answer).ok(),
            Err(reason) => {
                tracing::info!(target: "nsdb::sync", %reason, "the hub did not answer a request");
                None
            }
        }
    }
}

// ---------------------------------------------------------------- the hub

/// The hub's answers to nodes' requests, with its rate limits.
pub struct HubDesk {
    node: Arc<Node>,
    per_user: DefaultKeyedRateLimiter<(NodeId, u64)>,
    per_node: DefaultKeyedRateLimiter<NodeId>,
}

fn per_day(n: u32) -> Quota {
    let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_secs(86_400) / n.get())
        .unwrap_or_else(|| Quota::per_hour(n))
        .allow_burst(n)
}

impl HubDesk {
    pub fn new(node: Arc<Node>) -> HubDesk {
        HubDesk {
            node,
            per_user: RateLimiter::keyed(per_day(USER_PER_DAY)),
            per_node: RateLimiter::keyed(per_day(NODE_PER_DAY)),
        }
    }

    async fn lease(&self, peer: &Peer) -> Reply {
        if peer.role != PeerRole::Hospital {
            return Reply::NoLease {
                reason: "only hospitals issue access keys".into(),
            };
        }
        let (to, now) = (peer.node.to_string(), self.node.clock.now_ms());
        let leased = self
            .node
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let block = keys::lease_block(&tx, &to, now)?;
                if let Some(b) = block {
                    keys::audit_lease(&tx, Some(&to), b, now)?;
                }
                tx.commit()?;
                Ok::<_, crate::Error>(block)
            })
            .await;
        match leased {
            Ok(Some(block)) => Reply::Leased { block },
            Ok(None) => Reply::NoLease {
                reason: "every key block is leased".into(),
            },
            Err(e) => {
                tracing::error!(target: "nsdb::sync", error = %e, "a key block could not be leased");
                Reply::NoLease {
                    reason: "the hub could not record a lease".into(),
                }
            }
        }
    }

    async fn resolve(
        &self,
        peer: &Peer,
        key: String,
        birth_date: String,
        user: u64,
        login: String,
    ) -> Reply {
        let started = Instant::now();
        let reply = self
            .resolve_now(peer, &key, &birth_date, user, &login)
            .await;
        tokio::time::sleep_until((started + RESOLUTION_FLOOR).into()).await;
        reply
    }

    async fn resolve_now(
        &self,
        peer: &Peer,
        key: &str,
        birth_date: &str,
        user: u64,
        login: &str,
    ) -> Reply {
        let limited = self.per_user.check_key(&(peer.node, user)).is_err()
            || self.per_node.check_key(&peer.node).is_err();
        let found = if limited {
            None
        } else {
            match find_sheet(&self.node, key, birth_date).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(target: "nsdb::sync", error = %e, "a resolution failed at the hub");
                    return Reply::Refused {
                        reason: "the hub could not look the key up".into(),
                    };
                }
            }
        };
        let outcome = match (&found, limited) {
            (_, true) => "rate_limited",
            (Some(_), _) => "found",
            (None, _) => "not_found",
        };
        let detail = format!(
            "node={} user={user} login={login} result={outcome}",
            peer.node
        );
        let (target, to, now) = (
            found.as_ref().map(|f| f.sheet_id.clone()),
            peer.node,
            self.node.clock.now_ms(),
        );
        let hub = self.node.node_id;
        // 自治体連携日 is when a municipality received the sheet; another hospital's
        // 臨個票連携 reads it without linking it.
        let by_municipality = peer.role == PeerRole::Municipality;
        let recorded = self
            .node
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                audit::append(
                    &tx,
                    audit::Entry {
                        at_ms: now,
                        user: None,
                        action: "key_resolve",
                        target: target.as_deref(),
                        detail: Some(&detail),
                    },
                )?;
                let mut linked = None;
                if let Some(sheet) = &target {
                    super::hub::grant_in(&tx, sheet, to, now)?;
                    if by_municipality {
                        linked = mark_linked(&tx, sheet, hub, now)?;
                    }
                }
                tx.commit()?;
                Ok::<_, crate::Error>(linked)
            })
            .await;
        match (recorded, found) {
            (Err(e), _) => {
                tracing::error!(target: "nsdb::sync", error = %e, "a resolution could not be recorded");
                Reply::Refused {
                    reason: "the hub could not record the resolution".into(),
                }
            }
            (Ok(_), _) if limited => Reply::RateLimited,
            (Ok(linked), Some(mut sheet)) => {
                if sheet.linked_date.is_none() {
                    sheet.linked_date = linked;
                }
                Reply::Found(Box::new(sheet))
            }
            (Ok(_), None) => Reply::NotFound,
        }
    }
}

impl HubDesk {
    /// Stores a paper from a municipality (others are refused), once by id.
    async fn paper(&self, peer: &Peer, paper: papers::Outgoing) -> Reply {
        if peer.role != PeerRole::Municipality {
            return Reply::Refused {
                reason: "only municipalities send papers".into(),
            };
        }
        if !peer.jurisdiction.is_empty() && peer.jurisdiction != paper.municipality {
            return Reply::Refused {
                reason: "a paper of another municipality".into(),
            };
        }
        let (from, now) = (peer.node.to_string(), self.node.clock.now_ms());
        let stored = self
            .node
            .store
            .write(move |c| {
                let tx = c.transaction()?;
                let outcome = papers::receive(&tx, &from, &paper, now)?;
                tx.commit()?;
                Ok::<_, crate::Error>(outcome)
            })
            .await;
        match stored {
            Ok(Ok(_)) => Reply::PaperHeld,
            Ok(Err(reason)) => Reply::Refused { reason },
            Err(e) => {
                tracing::error!(target: "nsdb::sync", error = %e, "a paper could not be stored");
                Reply::Refused {
                    reason: "the hub could not store the paper".into(),
                }
            }
        }
    }

    async fn paper_states(&self, peer: &Peer, ids: Vec<String>) -> Reply {
        let from = peer.node.to_string();
        match self
            .node
            .store
            .read(move |c| papers::states(c, &from, &ids).map_err(crate::Error::from))
            .await
        {
            Ok(states) => Reply::PaperStates(states),
            Err(e) => Reply::Refused {
                reason: e.to_string(),
            },
        }
    }
}

/// On a municipality: sends every pending paper to the hub (one request each; a paper whose
/// answer is lost stays pending and is sent again, which the hub takes as the same paper), then
/// asks what became of those the hub holds and records the entered ones as resolved here
/// (`papers::mark_entered`), so their sheets join 受付一覧. Returns how many papers were sent.
/// Nothing happens on other roles; a hub that cannot be reached is tried at the next session.
pub async fn send_papers(node: &Node) -> crate::Result<usize> {
    if node.role() != crate::config::NodeRole::Municipality {
        return Ok(0);
    }
    let mut sent = 0;
    let ids = node
        .store
        .read(|c| papers::pending(c, 100).map_err(crate::Error::from))
        .await?;
    for id in ids {
        let one = id.clone();
        let Some(paper) = node
            .store
            .read(move |c| papers::outgoing(c, &one).map_err(crate::Error::from))
            .await?
        else {
            continue;
        };
        match node.sync.requests.ask(&Ask::Paper(Box::new(paper))).await {
            Some(Reply::PaperHeld) => {
                let now = node.clock.now_ms();
                node.store
                    .write(move |c| papers::mark_received(c, &id, now).map_err(crate::Error::from))
                    .await?;
                sent += 1;
            }
            // One refused paper does not hold back the others; it is offered again next time.
            Some(Reply::Refused { reason }) => {
                tracing::warn!(target: "nsdb::sync", paper = %id, %reason, "the hub refused a paper");
            }
            _ => break,
        }
    }
    let waiting = node
        .store
        .read(|c| papers::awaiting_entry(c).map_err(crate::Error::from))
        .await?;
    if !waiting.is_empty()
        && let Some(Reply::PaperStates(states)) = node
            .sync
            .requests
            .ask(&Ask::PaperStates { ids: waiting })
            .await
    {
        let now = node.clock.now_ms();
        node.store
            .write(move |c| {
                let tx = c.transaction()?;
                for s in states {
                    if let (papers::state::ENTERED, Some(sheet), Some(key)) =
                        (s.state.as_str(), &s.sheet_id, &s.access_key)
                    {
                        papers::mark_entered(&tx, &s.id, sheet, key, now)?;
                    }
                }
                tx.commit()?;
                Ok::<_, crate::Error>(())
            })
            .await?;
    }
    node.store
        .write(|c| papers::mark_paper_sheets(c).map_err(crate::Error::from))
        .await?;
    Ok(sent)
}

/// Marks the sheet linked in its document (first link only), under the hub's own actor, so the
/// source hospital's list shows 自治体連携日 once the change syncs back. Returns the date.
fn mark_linked(
    c: &Connection,
    sheet: &str,
    hub: NodeId,
    now: i64,
) -> crate::Result<Option<String>> {
    let Some(row) = crate::sheets::load_row(c, sheet)? else {
        return Ok(None);
    };
    let mut doc = crate::sheets::load_doc(c, sheet)?;
    let edit = Edit {
        author: Author {
            node: hub,
            user: crate::sheets::SYSTEM_USER,
        },
        at_ms: now,
        message: "連携",
    };
    if doc.set_linked(edit) {
        crate::sheets::store_sheet(c, &mut doc, &row.registration, now)?;
    }
    Ok(doc
        .linked_ms()
        .map(|ms| crate::sheets::jst_date(ms).to_string()))
}

/// A sheet's list row as a resolution shows it; the doctor's name as the sheet itself records
/// it (the hub holds no hospital's users).
fn resolved_sheet(c: &Connection, row: crate::sheets::SheetRow) -> crate::Result<ResolvedSheet> {
    let doctor_name = match row.doctor_name {
        Some(name) => Some(name),
        // A row stored before the list kept the name: read it from the document.
        None => {
            crate::sheets::doctor_in_document(&crate::sheets::load_doc(c, &row.id)?, row.doctor)
        }
    };
    Ok(ResolvedSheet {
        sheet_id: row.id,
        form_id: row.form_id,
        application_type: row.application_type,
        insurer_no: row.insurer_no,
        insured_no: row.insured_no,
        access_key: row.access_key.unwrap_or_default(),
        name_kana: row.name_kana,
        birth_date: row.birth_date,
        sex: row.sex,
        kokuji: row.kokuji,
        eda: row.eda,
        disease: row.disease,
        doctor_name,
        written_date: row.written_date,
        linked_date: row.linked_date,
        status: row.status,
        registration: row.registration,
        institution: row.institution,
    })
}

/// At the hub: the registered or approved sheet with access key `key` (11 digits) and birth
/// date `birth_date` (`YYYY-MM-DD`), as the list shows it; `None` for an unknown key, a wrong
/// birth date or a sheet not registered, alike. One indexed lookup (`sheets.access_key` is
/// unique) and one document read.
pub async fn find_sheet(
    node: &Node,
    key: &str,
    birth_date: &str,
) -> crate::Result<Option<ResolvedSheet>> {
    let (key, birth_date) = (key.to_string(), birth_date.to_string());
    node.store
        .read(move |c| {
            let id: Option<String> = c
                .query_row(
                    "SELECT id FROM sheets WHERE access_key = ?1 AND birth_date = ?2
                     AND status IN (?3, ?4)",
                    params![key, birth_date, status::REGISTERED, status::APPROVED],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            let Some(row) = crate::sheets::load_row(c, &id)? else {
                return Ok(None);
            };
            Ok::<_, crate::Error>(Some(resolved_sheet(c, row)?))
        })
        .await
}

impl Answerer for HubDesk {
    async fn answer(&self, peer: &Peer, body: Vec<u8>) -> Vec<u8> {
        let reply = match serde_json::from_slice::<Ask>(&body) {
            Ok(Ask::Lease) => self.lease(peer).await,
            Ok(Ask::Resolve {
                key,
                birth_date,
                user,
                login,
            }) => self.resolve(peer, key, birth_date, user, login).await,
            Ok(Ask::Paper(paper)) => self.paper(peer, *paper).await,
            Ok(Ask::PaperStates { ids }) => self.paper_states(peer, ids).await,
            Ok(Ask::Marks { blocks }) => super::key_marks::at_hub(&self.node, peer, blocks).await,
            Ok(Ask::Fetch { sheet }) => super::refetch::at_hub(&self.node, peer, sheet).await,
            Ok(Ask::Anchor { anchor, restored }) => {
                super::anchor::at_hub(&self.node, peer, anchor, restored).await
            }
            Ok(Ask::AnchorDiverged { seq }) => {
                super::anchor::diverged_at_hub(&self.node, peer, seq).await
            }
            Ok(Ask::Account(record)) => {
                super::accounts::take_record(&self.node, peer, *record).await
            }
            Ok(Ask::AccountPassword {
                account_id,
                hash,
                set_at,
            }) => {
                super::accounts::password_at_hub(&self.node, peer, account_id, hash, set_at).await
            }
            Ok(Ask::Accounts { since, name }) => {
                super::accounts::records_for(&self.node, peer, since, name).await
            }
            Ok(Ask::Institution { code }) => {
                super::accounts::institution_at_hub(&self.node, code).await
            }
            Ok(Ask::Kenmu { account_id, kenmu }) => {
                super::accounts::kenmu_at_hub(&self.node, peer, account_id, kenmu).await
            }
            Err(e) => Reply::Refused {
                reason: format!("unreadable request: {e}"),
            },
        };
        serde_json::to_vec(&reply).unwrap_or_default()
    }
}

// ---------------------------------------------------------------- a node

/// On a hospital: asks the hub for another key block while fewer than `keys::RESERVE` serials
/// are left in the leased ones. Returns the block leased, if any. Nothing happens on other
/// roles or when the reserve is enough; a hub that cannot be reached is tried again at the next
/// session.
pub async fn ensure_key_reserve(node: &Node) -> crate::Result<Option<u32>> {
    if node.role() != crate::config::NodeRole::Hospital {
        return Ok(None);
    }
    let own = node.node_id.to_string();
    let own_c = own.clone();
    let needs = node
        .store
        .read(move |c| keys::needs_block(c, &own_c).map_err(crate::Error::from))
        .await?;
    if !needs {
        return Ok(None);
    }
    match node.sync.requests.ask(&Ask::Lease).await {
        Some(Reply::Leased { block }) => {
            let now = node.clock.now_ms();
            node.store
                .write(move |c| {
                    let tx = c.transaction()?;
                    keys::accept_lease(&tx, block, &own, now)?;
                    keys::audit_lease(&tx, None, block, now)?;
                    tx.commit()?;
                    Ok::<_, crate::Error>(())
                })
                .await?;
            tracing::info!(target: "nsdb::sync", block, "the hub leased a key block");
            Ok(Some(block))
        }
        Some(Reply::NoLease { reason }) => {
            tracing::warn!(target: "nsdb::sync", %reason, "the hub leased no key block");
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Reads a birth date as typed (`1980-04-01`, `1980/4/1`, full-width digits, 和暦 such as
/// `昭和55年4月1日`) into `YYYY-MM-DD`.
pub fn birth_date_input(node: &Node, typed: &str) -> Option<String> {
    let item = node
        .catalogue
        .form("rinko-006")
        .and_then(|f| f.item("patient.birth_date"));
    let normalised = match item {
        Some(item) => nsdb_rules::value::normalise(item, typed),
        None => typed.trim().to_string(),
    };
    nsdb_rules::value::Date::parse(&normalised).map(|d| d.to_string())
}

/// Resolves an access key with the patient's birth date at the hub for `p` (a doctor or clerk
/// at a hospital, a reviewer at a municipality): on success the hub grants the sheet to this
/// node (it arrives by sync), and this node records a `resolutions` row. Every attempt is
/// audited here (ids only). Errors: [`ResolveError::Malformed`] (the key's check digit or the
/// date; the hub is not asked), `HubUnreachable`, `RateLimited`, `NotFound` (unknown key and
/// wrong birth date alike), or the node's own (`Denied`, storage).
pub async fn resolve(
    node: &Node,
    p: &Principal,
    key: &str,
    birth_date: &str,
) -> Result<Resolution, ResolveError> {
    authorize(p, Action::ResolveKey, Target::None).map_err(crate::Error::from)?;
    let Some(key) = AccessKey::parse(key) else {
        return Err(ResolveError::Malformed(AccessKey::problem(key)));
    };
    let Some(birth_date) = birth_date_input(node, birth_date) else {
        return Err(ResolveError::Malformed(
            "生年月日を 1980-04-01 や 昭和55年4月1日 の形で入力してください。".into(),
        ));
    };
    let ask = Ask::Resolve {
        key: key.digits().to_string(),
        birth_date,
        user: p.user_id,
        login: p.login.clone(),
    };
    let on_hub = node.role() == crate::config::NodeRole::Hub;
    let reply = if on_hub {
        Some(resolve_on_hub(node, p, &ask).await)
    } else {
        node.sync.requests.ask(&ask).await
    };
    let now = node.clock.now_ms();
    // On the hub the resolution is the clinic's; on a node, the node's own.
    let institution = if on_hub {
        p.institution.clone()
    } else {
        String::new()
    };
    let (outcome, result) = match reply {
        None => ("hub_unreachable", Err(ResolveError::HubUnreachable)),
        Some(Reply::Found(sheet)) => ("found", Ok(*sheet)),
        Some(Reply::NotFound) => ("not_found", Err(ResolveError::NotFound)),
        Some(Reply::RateLimited) => ("rate_limited", Err(ResolveError::RateLimited)),
        Some(Reply::Refused { reason } | Reply::NoLease { reason }) => {
            tracing::warn!(target: "nsdb::sync", %reason, "the hub refused a resolution");
            ("refused", Err(ResolveError::HubUnreachable))
        }
        Some(
            Reply::Leased { .. }
            | Reply::PaperHeld
            | Reply::PaperStates(_)
            | Reply::Marks { .. }
            | Reply::Document { .. }
            | Reply::Anchored { .. }
            | Reply::AccountHeld { .. }
            | Reply::Accounts { .. }
            | Reply::Institution { .. }
            | Reply::AccountRecord(_),
        ) => ("refused", Err(ResolveError::HubUnreachable)),
    };
    let user = p.user_id;
    let found = result.as_ref().ok().cloned();
    let digits = key.digits().to_string();
    let arrived = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let detail = format!("result={outcome}");
            audit::append(
                &tx,
                audit::Entry {
                    at_ms: now,
                    user: Some(user),
                    action: "key_resolve",
                    target: found.as_ref().map(|f| f.sheet_id.as_str()),
                    detail: Some(&detail),
                },
            )?;
            let mut arrived = false;
            if let Some(f) = &found {
                tx.execute(
                    "INSERT OR IGNORE INTO resolutions
                         (sheet_id, access_key, user_id, resolved_at, institution)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![f.sheet_id, digits, user as i64, now, institution],
                )?;
                arrived = crate::sheets::load_row(&tx, &f.sheet_id)?.is_some();
            }
            tx.commit()?;
            Ok::<_, crate::Error>(arrived)
        })
        .await?;
    let sheet = result?;
    // The grant is new at the hub: sync now, so the sheet arrives soon.
    node.sync.sync_now();
    let resolved_at_ms = resolved_at(node, &sheet.sheet_id, &p.institution)
        .await?
        .unwrap_or(now);
    Ok(Resolution {
        sheet,
        resolved_at_ms,
        arrived,
    })
}

async fn resolved_at(node: &Node, sheet: &str, institution: &str) -> crate::Result<Option<i64>> {
    let (sheet, institution) = (sheet.to_string(), institution.to_string());
    node.store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT min(resolved_at) FROM resolutions
                 WHERE sheet_id = ?1 AND institution IN ('', ?2)",
                [&sheet, &institution],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
        })
        .await
}

/// On the hub: a resolution by one of its own users (a clinic it serves), answered in place as
/// [`HubDesk`] answers a node: the same limits (per user, per clinic), the same lookup, no
/// answer before [`RESOLUTION_FLOOR`]. Nothing is granted (the hub holds every sheet) and
/// nothing is linked (a clinic's 臨個票連携 reads a sheet without linking it). The caller
/// audits the attempt.
async fn resolve_on_hub(node: &Node, p: &Principal, ask: &Ask) -> Reply {
    let started = Instant::now();
    let Ask::Resolve {
        key, birth_date, ..
    } = ask
    else {
        return Reply::Refused {
            reason: "not a resolution".into(),
        };
    };
    let limits = &node.sync.requests.local;
    let limited = limits.per_user.check_key(&p.user_id).is_err()
        || limits.per_institution.check_key(&p.institution).is_err();
    let reply = if limited {
        Reply::RateLimited
    } else {
        match find_sheet(node, key, birth_date).await {
            Ok(Some(sheet)) => Reply::Found(Box::new(sheet)),
            Ok(None) => Reply::NotFound,
            Err(e) => {
                tracing::error!(target: "nsdb::sync", error = %e, "a resolution failed at the hub");
                Reply::Refused {
                    reason: "the hub could not look the key up".into(),
                }
            }
        }
    };
    tokio::time::sleep_until((started + RESOLUTION_FLOOR).into()).await;
    reply
}

/// One row of this node's list of resolved keys (臨個票連携 at a hospital, 受付 at a
/// municipality), newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResolvedRow {
    pub sheet_id: String,
    /// 11 digits.
    pub access_key: String,
    pub resolved_at_ms: i64,
    /// Who resolved it here.
    pub user_id: u64,
    /// The sheet as this node holds it; `None` until it has arrived by sync (同期待ち).
    pub sheet: Option<ResolvedSheet>,
}

/// The keys this node resolved, newest first (at most `limit`), for users allowed to resolve;
/// on the hub only those the user's clinic resolved. The reading is audited as one list access.
pub async fn resolutions(
    node: &Node,
    p: &Principal,
    limit: u32,
) -> crate::Result<Vec<ResolvedRow>> {
    authorize(p, Action::ResolveKey, Target::None)?;
    let (user, now, institution) = (p.user_id, node.clock.now_ms(), p.institution.clone());
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            let found: Vec<(String, String, i64, i64)> = {
                let mut st = tx.prepare(
                    "SELECT sheet_id, access_key, resolved_at, user_id FROM resolutions
                     WHERE institution IN ('', ?2) ORDER BY resolved_at DESC LIMIT ?1",
                )?;
                st.query_map(params![limit, institution], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            let mut rows = Vec::with_capacity(found.len());
            for (sheet_id, access_key, resolved_at_ms, user_id) in found {
                let sheet = match crate::sheets::load_row(&tx, &sheet_id)? {
                    Some(row) => Some(resolved_sheet(&tx, row)?),
                    None => None,
                };
                rows.push(ResolvedRow {
                    sheet_id,
                    access_key,
                    resolved_at_ms,
                    user_id: user_id as u64,
                    sheet,
                });
            }
            let detail = audit::shown(rows.iter().map(|r| r.sheet_id.as_str()));
            audit::append(
                &tx,
                audit::Entry {
                    at_ms: now,
                    user: Some(user),
                    action: "resolution_list",
                    target: None,
                    detail: Some(&detail),
                },
            )?;
            tx.commit()?;
            Ok(rows)
        })
        .await
}
