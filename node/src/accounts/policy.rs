//! Who may do what: the one authorisation check every request goes through.
//!
//! Deny by default: `authorize` allows only the pairs of role and action listed here, and for a
//! sheet only when the sheet belongs to the user's institution, or was resolved here by key. A
//! doctor's 兼務 needs nothing here: on the other institution's node the doctor is a user of
//! that institution (`accounts::registry`). Domain functions call it before they touch data;
//! nothing else decides access.

use serde::Serialize;

/// The kind of account, as the ministry names them (M16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// 難病指定医
    NanbyoDoctor,
    /// 協力難病指定医
    KyoryokuDoctor,
    /// 小慢指定医
    ShomanDoctor,
    /// 医療クラーク等
    Clerk,
    /// 責任者 (a hospital's administrator)
    Admin,
    /// 自治体職員 (municipal reviewer)
    Reviewer,
    /// 厚生労働省職員
    Ministry,
    /// 紙臨個票データ入力者: the contractor at the hub who enters the data of paper sheets
    /// (M15).
    PaperEntry,
}

impl UserKind {
    pub const ALL: [UserKind; 8] = [
        UserKind::NanbyoDoctor,
        UserKind::KyoryokuDoctor,
        UserKind::ShomanDoctor,
        UserKind::Clerk,
        UserKind::Admin,
        UserKind::Reviewer,
        UserKind::Ministry,
        UserKind::PaperEntry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::NanbyoDoctor => "nanbyo_doctor",
            UserKind::KyoryokuDoctor => "kyoryoku_doctor",
            UserKind::ShomanDoctor => "shoman_doctor",
            UserKind::Clerk => "clerk",
            UserKind::Admin => "admin",
            UserKind::Reviewer => "reviewer",
            UserKind::Ministry => "ministry",
            UserKind::PaperEntry => "paper_entry",
        }
    }

    pub fn parse(s: &str) -> Option<UserKind> {
        UserKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            UserKind::NanbyoDoctor => "難病指定医",
            UserKind::KyoryokuDoctor => "協力難病指定医",
            UserKind::ShomanDoctor => "小慢指定医",
            UserKind::Clerk => "医療クラーク等",
            UserKind::Admin => "責任者",
            UserKind::Reviewer => "自治体職員",
            UserKind::Ministry => "厚生労働省職員",
            UserKind::PaperEntry => "紙臨個票データ入力者",
        }
    }

    pub fn role(self) -> Role {
        match self {
            UserKind::NanbyoDoctor | UserKind::KyoryokuDoctor | UserKind::ShomanDoctor => {
                Role::Doctor
            }
            UserKind::Clerk => Role::Clerk,
            UserKind::Admin => Role::Admin,
            UserKind::Reviewer => Role::Reviewer,
            UserKind::Ministry => Role::Ministry,
            UserKind::PaperEntry => Role::PaperEntry,
        }
    }
}

/// What a user may do follows from the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Doctor,
    Clerk,
    Admin,
    Reviewer,
    Ministry,
    /// Enters the data of paper sheets at the hub, and nothing else.
    PaperEntry,
}

/// The signed-in user on whose behalf a request acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Principal {
    pub user_id: u64,
    pub login: String,
    pub name: String,
    pub kind: UserKind,
    pub institution: String,
    /// Whether this user holds the institution's 責任者 role besides their kind's (a doctor
    /// the role was passed to, 責任者変更; the badge in the user list). Such a user may also do
    /// what [`Role::Admin`] may.
    pub responsible: bool,
    /// The user's main institution (主たる勤務先) when they act here for `institution` under a
    /// 兼務 (`accounts::registry`); `None` when `institution` is their own. Audit entries of
    /// sheet access name the institution acted for when this is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_institution: Option<String>,
}

impl Principal {
    pub fn role(&self) -> Role {
        self.kind.role()
    }

    /// Whether the user may do `action` at all (their kind's role, or the 責任者 role they
    /// hold): what menus show. Access itself is always decided by [`authorize`].
    ///
    /// User administration (`ManageUsers`) belongs to whoever holds the institution's 責任者
    /// role, one account at a time (`responsible`): an account of kind 責任者 that handed the
    /// role to a doctor (責任者変更) administers no more.
    pub fn may(&self, action: Action) -> bool {
        if action == Action::ManageUsers {
            return self.responsible;
        }
        role_may(self.role(), action) || (self.responsible && role_may(Role::Admin, action))
    }
}

/// The kinds of account a node of `node`'s role issues (`nsdb user add`): a hospital its
/// doctors, clerks and 責任者; a municipality its staff (自治体職員) and 責任者; the hub the
/// ministry's staff, the paper data entry, its 責任者, and clinics' doctors and clerks (with
/// the clinic's 医療機関コード).
pub fn kinds_on(node: crate::config::NodeRole) -> &'static [UserKind] {
    use crate::config::NodeRole;
    match node {
        NodeRole::Hospital => &[
            UserKind::NanbyoDoctor,
            UserKind::KyoryokuDoctor,
            UserKind::ShomanDoctor,
            UserKind::Clerk,
            UserKind::Admin,
        ],
        NodeRole::Municipality => &[UserKind::Reviewer, UserKind::Admin],
        NodeRole::Hub => &[
            UserKind::Ministry,
            UserKind::PaperEntry,
            UserKind::Admin,
            UserKind::NanbyoDoctor,
            UserKind::KyoryokuDoctor,
            UserKind::ShomanDoctor,
            UserKind::Clerk,
        ],
    }
}

/// Whether an account of `kind` may sign in and act on a node of `node`'s role, whatever is
/// stored: the kinds whose reach is decided by the node they are on — the ministry's staff
/// (every sheet the node holds, masked) and the paper data entry (the papers the node
/// received) — only on the hub. The other kinds' reach is decided by their institution
/// (doctors, clerks, 責任者) or by the keys their node resolved (自治体職員), wherever they
/// are; [`kinds_on`] is what a node issues.
pub fn kind_belongs(node: crate::config::NodeRole, kind: UserKind) -> bool {
    match kind.role() {
        Role::Ministry | Role::PaperEntry => node == crate::config::NodeRole::Hub,
        Role::Doctor | Role::Clerk | Role::Admin | Role::Reviewer => true,
    }
}

/// Something a user asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ListSheets,
    CreateSheet,
    ViewSheet,
    EditSheet,
    /// Send a sheet to a doctor for review (clerk → doctor).
    RequestReview,
    /// Take back a sheet one sent, before the doctor acted (引戻).
    PullBack,
    /// Send a sheet back to whoever asked, with a comment (差戻し).
    ReturnSheet,
    /// 登録: the doctor registers the sheet; an access key is issued.
    Register,
    /// 承認
    Approve,
    /// 解除: release an approval.
    Release,
    /// 更新登録: start next year's sheet from this one.
    CarryForward,
    ManageUsers,
    /// A municipality's review: the intake list, the review screen, the 審査会 print.
    ReviewSheet,
    /// Record a review's result, ask or close an inquiry (照会).
    RecordReview,
    /// Answer a municipality's inquiry at the hospital.
    AnswerInquiry,
    /// Resolve an access key with a birth date at the hub (臨個票連携, 受付).
    ResolveKey,
    /// National statistics and research exports at the hub (M19).
    ResearchData,
    /// 紙の臨個票受付: upload the scanned PDF of a paper sheet at a municipality, and list
    /// this node's uploads.
    UploadPaper,
    /// At the hub: list the papers received and enter a paper's data (a new sheet, 登録種別 紙).
    EnterPaper,
    /// Open a paper's PDF.
    ViewPaper,
    /// 利用状況の監視: the alerts the node's detectors raised, and 確認済み.
    MonitorUse,
    /// The ministry's exceptional access to one identified sheet: with a typed reason, audited,
    /// alerted at once and for a limited time (`sheets::identified`).
    OpenIdentified,
}

/// The owner of the thing acted on, where there is one.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    None,
    /// A sheet, by the institution it belongs to.
    Sheet {
        institution: &'a str,
    },
    /// A sheet as a municipality reviews it: whether this node resolved its access key (with
    /// the patient's birth date). A reviewer reaches only those.
    Resolved {
        resolved: bool,
    },
    /// Another institution's sheet that this node resolved by its access key (granted to
    /// this node, arrived by sync): readable and a source for 更新登録, never editable.
    Linked,
    /// A paper (紙の臨個票) this node holds: whether it is the user's to see — at a
    /// municipality, uploaded by the user's municipality; at the hub, received there.
    Paper {
        ours: bool,
    },
    /// A sheet the ministry's user holds a live, justified grant for (`OpenIdentified`, a typed
    /// reason, for a limited time).
    Justified,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("この操作を行う権限がありません。")]
pub struct Denied;

/// Whether a role may do an action at all, whatever it acts on. Menus use this to decide what
/// to show; access itself is always decided by `authorize`.
pub fn role_may(role: Role, action: Action) -> bool {
    use Action::*;
    matches!(
        (role, action),
        (
            Role::Doctor | Role::Clerk,
            ListSheets
                | CreateSheet
                | ViewSheet
                | EditSheet
                | RequestReview
                | PullBack
                | CarryForward
                | ResolveKey
        ) | (Role::Doctor, ReturnSheet | Register | Approve | Release)
            | (Role::Doctor | Role::Clerk, AnswerInquiry)
            | (Role::Reviewer, ResolveKey)
            | (Role::Reviewer | Role::Ministry, ListSheets | ViewSheet)
            | (Role::Reviewer, ReviewSheet | RecordReview)
            | (Role::Admin, ManageUsers)
            | (Role::Ministry, ResearchData)
            | (Role::Reviewer, UploadPaper | ViewPaper)
            | (Role::PaperEntry, EnterPaper | ViewPaper)
            | (Role::Admin | Role::Ministry, MonitorUse)
            | (Role::Ministry, OpenIdentified)
    )
}

/// The one authorisation check. Anything not allowed here is denied.
pub fn authorize(p: &Principal, action: Action, target: Target<'_>) -> Result<(), Denied> {
    use Action::*;
    let role = p.role();
    if !p.may(action) {
        return Err(Denied);
    }
    let allowed = match (action, target) {
        (
            ListSheets | CreateSheet | ManageUsers | ReviewSheet | ResolveKey | ResearchData
            | UploadPaper | EnterPaper | MonitorUse,
            Target::None,
        ) => true,
        // The ministry reads an identified sheet only under a live, justified grant.
        (ViewSheet, Target::Justified) => role == Role::Ministry,
        // ... which it asks for, with a reason, for any sheet the hub holds.
        (OpenIdentified, Target::Sheet { .. }) => role == Role::Ministry,
        // A reviewer reaches a sheet only when this node resolved its key.
        (ReviewSheet | RecordReview, Target::Resolved { resolved }) => resolved,
        // A sheet resolved here by key: read, and carried forward from at a hospital. The
        // ministry resolves no key, and reads identified sheets only under a grant.
        (ViewSheet | CarryForward, Target::Linked) => role != Role::Ministry,
        // A paper's PDF: only the municipality that uploaded it, and the hub's data entry.
        (ViewPaper, Target::Paper { ours }) => ours,
        // Doctors and clerks reach their own institution's sheets. The ministry reads no
        // identified sheet by default (only `Target::Justified`). A municipal reviewer reads
        // only what their node resolved by key (`Target::Linked`), never a sheet merely held.
        (ViewSheet, Target::Sheet { institution }) => match role {
            Role::Doctor | Role::Clerk => institution == p.institution,
            Role::Ministry | Role::Reviewer | Role::Admin | Role::PaperEntry => false,
        },
        // Every change to a sheet: only at the user's own institution. Listed, not a catch-all:
        // an action asked about a sheet that is not named here is denied.
        (
            EditSheet | RequestReview | PullBack | ReturnSheet | Register | Approve | Release
            | CarryForward | AnswerInquiry,
            Target::Sheet { institution },
        ) => institution == p.institution,
        _ => false,
    };
    if allowed { Ok(()) } else { Err(Denied) }
}

impl Role {
    /// Every role, in the order the permission matrix lists them.
    pub const ALL: [Role; 6] = [
        Role::Doctor,
        Role::Clerk,
        Role::Admin,
        Role::Reviewer,
        Role::Ministry,
        Role::PaperEntry,
    ];

    /// The role as the matrix names it: the kinds of account that have it.
    pub fn label(self) -> &'static str {
        match self {
            Role::Doctor => "指定医",
            Role::Clerk => "医療クラーク等",
            Role::Admin => "責任者",
            Role::Reviewer => "自治体職員",
            Role::Ministry => "厚生労働省職員",
            Role::PaperEntry => "紙臨個票データ入力者",
        }
    }
}

impl Action {
    /// Every action, in the order the permission matrix lists them (a new action goes here and
    /// in [`Action::label`]).
    pub const ALL: [Action; 22] = [
        Action::ListSheets,
        Action::CreateSheet,
        Action::ViewSheet,
        Action::EditSheet,
        Action::RequestReview,
        Action::PullBack,
        Action::ReturnSheet,
        Action::Register,
        Action::Approve,
        Action::Release,
        Action::CarryForward,
        Action::ManageUsers,
        Action::ReviewSheet,
        Action::RecordReview,
        Action::AnswerInquiry,
        Action::ResolveKey,
        Action::ResearchData,
        Action::UploadPaper,
        Action::EnterPaper,
        Action::ViewPaper,
        Action::MonitorUse,
        Action::OpenIdentified,
    ];

    /// What the action is, as the matrix names it.
    pub fn label(self) -> &'static str {
        match self {
            Action::ListSheets => "一覧・検索",
            Action::CreateSheet => "新規作成",
            Action::ViewSheet => "閲覧・印刷",
            Action::EditSheet => "編集・一時保存",
            Action::RequestReview => "確認依頼",
            Action::PullBack => "引戻",
            Action::ReturnSheet => "差戻し",
            Action::Register => "登録",
            Action::Approve => "承認",
            Action::Release => "承認解除",
            Action::CarryForward => "更新登録",
            Action::ManageUsers => "ユーザ管理",
            Action::ReviewSheet => "受付・審査・審査会用印刷",
            Action::RecordReview => "審査結果・照会",
            Action::AnswerInquiry => "照会への回答",
            Action::ResolveKey => "アクセスキーの照会（受付・臨個票連携）",
            Action::ResearchData => "研究・統計",
            Action::UploadPaper => "紙の臨個票受付",
            Action::EnterPaper => "紙臨個票入力",
            Action::ViewPaper => "紙の臨個票（PDF）の閲覧",
            Action::MonitorUse => "利用状況の監視・確認済み",
            Action::OpenIdentified => "識別情報のある臨個票の例外閲覧（理由・時間制限付き）",
        }
    }
}

/// The permission matrix (docs/security.md), computed by asking [`authorize`] every question:
/// one row per action, one column per role, and in each cell what the role may act on — 全体
/// (no particular sheet), 自院 (a sheet of the user's own institution), 他院 (another
/// institution's sheet held on the node), 連携 (a sheet this node resolved by key at 臨個票連携),
/// 受付済 / 未受付 (at a municipality: a sheet whose key it resolved, or not), 理由付き (a sheet
/// under the ministry's live, justified grant). Generated so the
/// documentation can never differ from the code; a test keeps docs/security.md equal to it.
pub fn matrix() -> String {
    let targets: [(&str, Target<'static>); 9] = [
        ("全体", Target::None),
        ("自院", Target::Sheet { institution: "A" }),
        ("他院", Target::Sheet { institution: "B" }),
        ("連携", Target::Linked),
        ("受付済", Target::Resolved { resolved: true }),
        ("未受付", Target::Resolved { resolved: false }),
        ("自分の紙", Target::Paper { ours: true }),
        ("他の紙", Target::Paper { ours: false }),
        ("理由付き", Target::Justified),
    ];
    let kind_of = |role: Role| {
        UserKind::ALL
            .into_iter()
            .find(|k| k.role() == role)
            .unwrap_or(UserKind::Clerk)
    };
    let mut out = String::from("| 操作 |");
    for role in Role::ALL {
        out.push_str(&format!(" {} |", role.label()));
    }
    out.push_str("\n| --- |");
    out.push_str(&" --- |".repeat(Role::ALL.len()));
    out.push('\n');
    for action in Action::ALL {
        out.push_str(&format!("| {} (`{action:?}`) |", action.label()));
        for role in Role::ALL {
            let p = Principal {
                user_id: 1,
                login: String::new(),
                name: String::new(),
                kind: kind_of(role),
                institution: "A".into(),
                // An account of kind 責任者 holds the role until it hands it over.
                responsible: role == Role::Admin,
                home_institution: None,
            };
            let allowed: Vec<&str> = targets
                .iter()
                .filter(|(_, t)| authorize(&p, action, *t).is_ok())
                .map(|(name, _)| *name)
                .collect();
            let cell = if allowed.is_empty() {
                "—".to_string()
            } else {
                allowed.join("・")
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_in_security_md_is_the_one_the_policy_answers() {
        let m = matrix();
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
                .expect("docs/security.md");
        assert!(
            doc.contains(&m),
            "docs/security.md does not hold the permission matrix the policy answers; replace its table with:\n{m}"
        );
    }

    fn user(kind: UserKind, inst: &str) -> Principal {
        Principal {
            user_id: 1,
            login: "u".into(),
            name: "u".into(),
            kind,
            institution: inst.into(),
            responsible: kind == UserKind::Admin,
            home_institution: None,
        }
    }

    #[test]
    fn a_doctor_holding_the_responsible_role_manages_users_and_still_writes_sheets() {
        let mut u = user(UserKind::NanbyoDoctor, "A");
        u.responsible = true;
        assert!(authorize(&u, Action::ManageUsers, Target::None).is_ok());
        assert!(authorize(&u, Action::MonitorUse, Target::None).is_ok());
        assert!(authorize(&u, Action::EditSheet, Target::Sheet { institution: "A" }).is_ok());
        assert_eq!(
            authorize(&u, Action::EditSheet, Target::Sheet { institution: "B" }),
            Err(Denied)
        );
        assert_eq!(
            authorize(&u, Action::ResearchData, Target::None),
            Err(Denied)
        );
    }

    #[test]
    fn doctors_and_clerks_reach_only_their_own_institutions_sheets() {
        for kind in [UserKind::NanbyoDoctor, UserKind::Clerk] {
            let u = user(kind, "A");
            let own = Target::Sheet { institution: "A" };
            let other = Target::Sheet { institution: "B" };
            assert!(authorize(&u, Action::ViewSheet, own).is_ok());
            assert!(authorize(&u, Action::EditSheet, own).is_ok());
            assert_eq!(authorize(&u, Action::ViewSheet, other), Err(Denied));
            assert_eq!(authorize(&u, Action::EditSheet, other), Err(Denied));
            assert_eq!(
                authorize(&u, Action::ManageUsers, Target::None),
                Err(Denied)
            );
        }
    }

    #[test]
    fn administrators_manage_users_but_do_not_read_sheets() {
        let a = user(UserKind::Admin, "A");
        assert!(authorize(&a, Action::ManageUsers, Target::None).is_ok());
        assert_eq!(authorize(&a, Action::ListSheets, Target::None), Err(Denied));
        let own = Target::Sheet { institution: "A" };
        assert_eq!(authorize(&a, Action::ViewSheet, own), Err(Denied));
    }

    #[test]
    fn only_the_ministry_reaches_research_data() {
        let m = user(UserKind::Ministry, "mhlw");
        assert!(authorize(&m, Action::ResearchData, Target::None).is_ok());
        for kind in [
            UserKind::NanbyoDoctor,
            UserKind::Clerk,
            UserKind::Admin,
            UserKind::Reviewer,
        ] {
            let u = user(kind, "A");
            assert_eq!(
                authorize(&u, Action::ResearchData, Target::None),
                Err(Denied),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn reviewers_read_what_their_node_resolved_but_never_write() {
        let r = user(UserKind::Reviewer, "M");
        let s = Target::Sheet { institution: "A" };
        assert!(authorize(&r, Action::ViewSheet, Target::Linked).is_ok());
        assert_eq!(authorize(&r, Action::ViewSheet, s), Err(Denied));
        assert_eq!(authorize(&r, Action::EditSheet, s), Err(Denied));
        assert_eq!(
            authorize(&r, Action::EditSheet, Target::Linked),
            Err(Denied)
        );
        assert_eq!(
            authorize(&r, Action::CreateSheet, Target::None),
            Err(Denied)
        );
    }

    #[test]
    fn a_sheet_resolved_by_key_is_read_and_renewed_from_but_never_changed() {
        for kind in [UserKind::NanbyoDoctor, UserKind::Clerk] {
            let u = user(kind, "B");
            assert!(authorize(&u, Action::ResolveKey, Target::None).is_ok());
            assert!(authorize(&u, Action::ViewSheet, Target::Linked).is_ok());
            assert!(authorize(&u, Action::CarryForward, Target::Linked).is_ok());
            for action in [
                Action::EditSheet,
                Action::Register,
                Action::RequestReview,
                Action::PullBack,
            ] {
                assert_eq!(
                    authorize(&u, action, Target::Linked),
                    Err(Denied),
                    "{action:?}"
                );
            }
        }
        let reviewer = user(UserKind::Reviewer, "M");
        assert!(authorize(&reviewer, Action::ResolveKey, Target::None).is_ok());
        assert!(authorize(&reviewer, Action::ViewSheet, Target::Linked).is_ok());
        // A sheet the node merely holds (not resolved here) is not the reviewer's to read.
        assert_eq!(
            authorize(
                &reviewer,
                Action::ViewSheet,
                Target::Sheet { institution: "B" }
            ),
            Err(Denied)
        );
        assert_eq!(
            authorize(&reviewer, Action::EditSheet, Target::Linked),
            Err(Denied)
        );
        let admin = user(UserKind::Admin, "B");
        assert_eq!(
            authorize(&admin, Action::ResolveKey, Target::None),
            Err(Denied)
        );
        assert_eq!(
            authorize(&admin, Action::ViewSheet, Target::Linked),
            Err(Denied)
        );
    }

    #[test]
    fn only_doctors_register_approve_release_and_return() {
        let own = Target::Sheet { institution: "A" };
        let clerk = user(UserKind::Clerk, "A");
        let doctor = user(UserKind::ShomanDoctor, "A");
        for action in [
            Action::Register,
            Action::Approve,
            Action::Release,
            Action::ReturnSheet,
        ] {
            assert_eq!(authorize(&clerk, action, own), Err(Denied), "{action:?}");
            assert!(authorize(&doctor, action, own).is_ok(), "{action:?}");
            let other = Target::Sheet { institution: "B" };
            assert_eq!(authorize(&doctor, action, other), Err(Denied), "{action:?}");
        }
        for action in [
            Action::RequestReview,
            Action::PullBack,
            Action::CarryForward,
        ] {
            assert!(authorize(&clerk, action, own).is_ok(), "{action:?}");
        }
        let reviewer = user(UserKind::Reviewer, "A");
        assert_eq!(authorize(&reviewer, Action::Approve, own), Err(Denied));
    }

    #[test]
    fn reviewers_review_only_what_their_node_resolved_and_hospitals_answer_their_own() {
        let r = user(UserKind::Reviewer, "M");
        let yes = Target::Resolved { resolved: true };
        let no = Target::Resolved { resolved: false };
        assert!(authorize(&r, Action::ReviewSheet, yes).is_ok());
        assert!(authorize(&r, Action::RecordReview, yes).is_ok());
        assert_eq!(authorize(&r, Action::ReviewSheet, no), Err(Denied));
        assert_eq!(authorize(&r, Action::RecordReview, no), Err(Denied));
        let doctor = user(UserKind::NanbyoDoctor, "A");
        assert_eq!(authorize(&doctor, Action::RecordReview, yes), Err(Denied));
        let own = Target::Sheet { institution: "A" };
        let other = Target::Sheet { institution: "B" };
        assert!(authorize(&doctor, Action::AnswerInquiry, own).is_ok());
        assert_eq!(
            authorize(&doctor, Action::AnswerInquiry, other),
            Err(Denied)
        );
        assert_eq!(authorize(&r, Action::AnswerInquiry, own), Err(Denied));
    }

    #[test]
    fn municipalities_upload_papers_and_only_the_hubs_data_entry_enters_them() {
        let r = user(UserKind::Reviewer, "M");
        let entry = user(UserKind::PaperEntry, "HUB");
        assert!(authorize(&r, Action::UploadPaper, Target::None).is_ok());
        assert_eq!(authorize(&r, Action::EnterPaper, Target::None), Err(Denied));
        assert!(authorize(&entry, Action::EnterPaper, Target::None).is_ok());
        assert_eq!(
            authorize(&entry, Action::UploadPaper, Target::None),
            Err(Denied)
        );
        for kind in [
            UserKind::NanbyoDoctor,
            UserKind::Clerk,
            UserKind::Admin,
            UserKind::Ministry,
        ] {
            let u = user(kind, "A");
            for action in [Action::UploadPaper, Action::EnterPaper] {
                assert_eq!(authorize(&u, action, Target::None), Err(Denied), "{kind:?}");
            }
            assert_eq!(
                authorize(&u, Action::ViewPaper, Target::Paper { ours: true }),
                Err(Denied),
                "{kind:?}"
            );
        }
        // The data entry role reads no sheet list, research or users beyond its papers.
        for action in [
            Action::ListSheets,
            Action::ResearchData,
            Action::ManageUsers,
        ] {
            assert_eq!(authorize(&entry, action, Target::None), Err(Denied));
        }
        let s = Target::Sheet { institution: "HUB" };
        assert_eq!(authorize(&entry, Action::ViewSheet, s), Err(Denied));
    }

    #[test]
    fn a_papers_pdf_is_shown_only_to_its_municipality_and_the_hubs_data_entry() {
        let ours = Target::Paper { ours: true };
        let theirs = Target::Paper { ours: false };
        for kind in [UserKind::Reviewer, UserKind::PaperEntry] {
            let u = user(kind, "M");
            assert!(authorize(&u, Action::ViewPaper, ours).is_ok(), "{kind:?}");
            assert_eq!(authorize(&u, Action::ViewPaper, theirs), Err(Denied));
            assert_eq!(authorize(&u, Action::ViewPaper, Target::None), Err(Denied));
        }
    }

    #[test]
    fn the_ministry_reads_an_identified_sheet_only_under_a_justified_grant() {
        let m = user(UserKind::Ministry, "HUB");
        for inst in ["HUB", "A"] {
            let s = Target::Sheet { institution: inst };
            assert_eq!(authorize(&m, Action::ViewSheet, s), Err(Denied));
            assert!(authorize(&m, Action::OpenIdentified, s).is_ok());
        }
        assert_eq!(
            authorize(&m, Action::ViewSheet, Target::Linked),
            Err(Denied)
        );
        assert!(authorize(&m, Action::ViewSheet, Target::Justified).is_ok());
        assert!(authorize(&m, Action::MonitorUse, Target::None).is_ok());
        // Nobody else asks for or uses such a grant; only the 責任者 and the ministry monitor.
        for kind in [
            UserKind::NanbyoDoctor,
            UserKind::Clerk,
            UserKind::Admin,
            UserKind::Reviewer,
            UserKind::PaperEntry,
        ] {
            let u = user(kind, "A");
            let own = Target::Sheet { institution: "A" };
            assert_eq!(authorize(&u, Action::OpenIdentified, own), Err(Denied));
            assert_eq!(
                authorize(&u, Action::ViewSheet, Target::Justified),
                Err(Denied)
            );
            assert_eq!(
                authorize(&u, Action::MonitorUse, Target::None).is_ok(),
                kind == UserKind::Admin,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn an_action_without_its_target_is_denied() {
        let d = user(UserKind::NanbyoDoctor, "A");
        assert_eq!(authorize(&d, Action::ViewSheet, Target::None), Err(Denied));
    }
}
