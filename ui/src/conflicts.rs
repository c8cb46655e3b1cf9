//! The conflict panel of a sheet and the sync status page.
//!
//! The panel lists every item that holds values written on two nodes while apart: each value
//! with who wrote it, where and when, and (for a doctor) a button to keep that value. Views take
//! plain data and return markup; they never decide who may resolve (the node passes it in).

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One value of a conflicting item, ready to show.
#[derive(Debug, Clone)]
pub struct ConflictChoice {
    /// The stored value (what a pick sends back).
    pub value: String,
    /// The value as shown (code labels, units).
    pub display: String,
    pub who: String,
    pub place: String,
    pub when: String,
}

/// An item holding concurrent values.
#[derive(Debug, Clone)]
pub struct ConflictItem {
    pub field: String,
    pub label: String,
    pub choices: Vec<ConflictChoice>,
}

/// Everything the panel shows.
#[derive(Debug, Clone, Default)]
pub struct ConflictPanel {
    pub sheet_id: String,
    pub csrf: String,
    /// Shows the buttons that keep a value (doctors who may edit the sheet).
    pub can_resolve: bool,
    pub items: Vec<ConflictItem>,
    /// The pick returns to the editor rather than the view.
    pub from_editor: bool,
}

/// The panel, or nothing when the sheet has no conflicts.
pub fn panel(p: &ConflictPanel) -> Markup {
    html! {
        @if !p.items.is_empty() {
            section.messages.conflicts role="alert" aria-labelledby="conflicts-title" {
                h2 #conflicts-title { "同時に編集された項目があります（" (p.items.len()) "件）" }
                p {
                    "別々の場所で同じ項目が変更されました。どちらの値も保存されています。"
                    @if p.can_resolve { "正しい値を選んでください。" } @else { "正しい値は指定医が選びます（選ばれるまで登録できません）。" }
                }
                @for item in &p.items {
                    table.list {
                        caption { (item.label) }
                        thead { tr { th { "値" } th { "入力者" } th { "場所" } th { "日時" } @if p.can_resolve { th { "操作" } } } }
                        tbody {
                            @for c in &item.choices {
                                tr {
                                    td { (c.display) }
                                    td { (c.who) }
                                    td { (c.place) }
                                    td { (c.when) }
                                    @if p.can_resolve {
                                        td {
                                            @if p.from_editor {
                                                // In the editor the choice is one of the editor's
                                                // buttons: what was typed elsewhere is saved with it.
                                                button.primary type="submit" form="sheet" name="action"
                                                    value={ "adopt:" (item.field) ":" (c.value) } { "この値を採用" }
                                            } @else {
                                                form method="post" action={ "/sheets/" (p.sheet_id) "/conflicts" } {
                                                    input type="hidden" name="csrf" value=(p.csrf);
                                                    input type="hidden" name="field" value=(item.field);
                                                    input type="hidden" name="value" value=(c.value);
                                                    button.primary type="submit" { "この値を採用" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Sync status as shown on the status page.
#[derive(Debug, Clone, Default)]
pub struct SyncStatusView {
    pub mode: String,
    pub connected: bool,
    pub address: String,
    pub last_success: String,
    pub last_attempt: String,
    pub waiting: u64,
    pub sessions: u64,
    /// (label, value) lines about the last session.
    pub last_session: Vec<(String, String)>,
    /// (when, message), newest last.
    pub errors: Vec<(String, String)>,
    /// Sheets that could not cross, set aside while the others keep flowing.
    pub set_aside: Vec<SetAsideView>,
    /// Why the hub refuses this node, while it does (shown first, as an error).
    pub refused: Option<String>,
}

/// One sheet set aside by sync, as the sync page shows it.
#[derive(Debug, Clone, Default)]
pub struct SetAsideView {
    pub sheet_id: String,
    pub reason: String,
    pub since: String,
    pub attempts: u32,
    pub next_retry: String,
}

/// The sync status page.
pub fn sync_status(ctx: &PageContext<'_>, s: &SyncStatusView) -> Markup {
    layout(
        ctx,
        "同期の状態",
        html! {
            @if let Some(why) = &s.refused { p.error.refused { (why) } }
            dl.meta {
                dt { "動作" } dd { (s.mode) }
                dt { "接続" } dd { @if s.connected { "接続中" } @else { "未接続" } }
                dt { "相手" } dd { (s.address) }
                dt { "最終同期成功" } dd { (s.last_success) }
                dt { "最終試行" } dd { (s.last_attempt) }
                dt { "送信待ち" } dd { (s.waiting) "件" }
                dt { "同期回数" } dd { (s.sessions) }
            }
            h2 { "送れない票（保留中）" }
            @if s.set_aside.is_empty() { p { "ありません。" } }
            @else {
                p { "次の票は送れなかったため保留し、間隔をあけて再送します。他の票の同期は続いています。" }
                table.list.set-aside {
                    thead { tr { th { "票" } th { "理由" } th { "保留開始" } th { "試行回数" } th { "次の再送" } } }
                    tbody {
                        @for a in &s.set_aside {
                            tr {
                                td { a href={ "/sheets/" (a.sheet_id) } { (a.sheet_id) } }
                                td { (a.reason) } td { (a.since) } td { (a.attempts) } td { (a.next_retry) }
                            }
                        }
                    }
                }
            }
            @if !s.last_session.is_empty() {
                h2 { "直近の同期" }
                dl.meta { @for (k, v) in &s.last_session { dt { (k) } dd { (v) } } }
            }
            h2 { "エラー" }
            @if s.errors.is_empty() { p { "ありません。" } }
            @else {
                table.list {
                    thead { tr { th { "日時" } th { "内容" } } }
                    tbody { @for (at, m) in &s.errors { tr { td { (at) } td { (m) } } } }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_panel_lists_every_value_and_offers_buttons_only_when_allowed() {
        let mut p = ConflictPanel {
            sheet_id: "s1".into(),
            csrf: "t".into(),
            can_resolve: true,
            from_editor: false,
            items: vec![ConflictItem {
                field: "q1".into(),
                label: "発症".into(),
                choices: vec![
                    ConflictChoice {
                        value: "1".into(),
                        display: "あり".into(),
                        who: "鈴木".into(),
                        place: "デモ病院".into(),
                        when: "2026/04/01 10:00".into(),
                    },
                    ConflictChoice {
                        value: "2".into(),
                        display: "なし".into(),
                        who: "利用者 9".into(),
                        place: "ノード abcd".into(),
                        when: "".into(),
                    },
                ],
            }],
        };
        let html = panel(&p).into_string();
        assert!(html.contains("あり") && html.contains("なし") && html.contains("鈴木"));
        assert_eq!(html.matches("この値を採用").count(), 2);
        p.can_resolve = false;
        assert!(!panel(&p).into_string().contains("この値を採用"));
        assert!(panel(&ConflictPanel::default()).into_string().is_empty());
    }

    #[test]
    fn the_sync_page_says_first_when_the_hub_refuses_this_node() {
        let ctx = crate::PageContext {
            node_label: "医療機関 試験病院",
            user_name: "試験",
            user_kind: "事務",
            can_read_sheets: true,
            can_create: false,
            is_admin: false,
            issues_doctors: false,
            is_doctor: false,
            can_review: false,
            can_research: false,
            can_enter_papers: false,
            can_monitor: false,
            open_alerts: 0,
            csrf: "t",
            flash: None,
        };
        let why = "ハブがこのノードを受け付けません（登録取消し、または未登録）。";
        let html = sync_status(
            &ctx,
            &SyncStatusView {
                refused: Some(why.into()),
                ..Default::default()
            },
        )
        .into_string();
        assert!(
            html.contains(&format!("<p class=\"error refused\">{why}</p>")),
            "{html}"
        );
        let html = sync_status(&ctx, &SyncStatusView::default()).into_string();
        assert!(!html.contains("refused"));
    }
}
