//! 利用状況の監視: the alerts a node's detectors raised (for the 責任者 and the ministry), with
//! 確認済み per alert; and the ministry's form to open an identified sheet with a reason.
//! Renders what it is given; decides nothing.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One alert, in display form. Ids only: the subject is a login ID or node and user ids.
#[derive(Debug, Clone, Default)]
pub struct AlertLine {
    pub id: i64,
    /// 発生日時
    pub raised: String,
    /// 規則, e.g. 「多数の患者の臨個票の閲覧」
    pub rule: String,
    /// 利用者: e.g. 「doctor（ID 3）」 or 「ノード ab12…／利用者ID 5」
    pub subject: String,
    /// 件数, e.g. 「201件（基準 200件）」
    pub count: String,
    /// 期間, e.g. 「2026-04-01 00:00 〜 2026-04-02 00:00」
    pub window: String,
    /// 状態: 未確認, or 確認済み with who and when.
    pub state: String,
    pub acknowledged: bool,
}

/// The alert list. `notice` is shown after an acknowledgement.
pub fn alerts(ctx: &PageContext<'_>, lines: &[AlertLine], notice: Option<&str>) -> Markup {
    layout(
        ctx,
        "利用状況の監視",
        html! {
            p.meta {
                "監査ログから、通常と異なる利用（多数の患者の閲覧、アクセスキー照会の失敗、時間外の利用、大量の出力、他院の臨個票からの更新登録、厚生労働省による識別情報の閲覧）を検出した警告です。"
                "内容を確かめたら「確認済み」を押してください（操作は記録されます）。"
            }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            @if lines.is_empty() {
                p #no-alerts { "警告はありません。" }
            } @else {
                table.list.alerts {
                    thead { tr {
                        th { "発生日時" } th { "規則" } th { "利用者" } th { "件数" } th { "期間" } th { "状態" } th { "操作" }
                    } }
                    tbody {
                        @for a in lines {
                            tr id={ "alert-" (a.id) } class=[(!a.acknowledged).then_some("open")] {
                                td { (a.raised) }
                                td { (a.rule) }
                                td { (a.subject) }
                                td { (a.count) }
                                td { (a.window) }
                                td { (a.state) }
                                td {
                                    @if !a.acknowledged {
                                        form method="post" action={ "/monitor/" (a.id) "/acknowledge" } {
                                            input type="hidden" name="csrf" value=(ctx.csrf);
                                            button type="submit" { "確認済み" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The ministry's request to open one identified sheet: why (理由, required, at most
/// `max_chars`) and for how long. `error` is shown beside the field; `reason` is kept as typed.
pub fn identified_form(
    ctx: &PageContext<'_>,
    sheet_id: &str,
    minutes: i64,
    max_chars: usize,
    reason: &str,
    error: Option<&str>,
) -> Markup {
    layout(
        ctx,
        "識別情報のある臨個票を開く",
        html! {
            p {
                "厚生労働省の職員は、通常は名前などの識別情報のある臨床調査個人票・医療意見書を開けません（研究・統計、匿名化したデータ、連携の支援は利用できます）。"
                "やむを得ず開く場合は理由を入力してください。理由は監査ログに記録され、ハブ（中央）の「利用状況の監視」に警告が出ます。閲覧できるのはこの票だけで、30分間です。"
                "開けるのはこの1件だけで、" (minutes) "分間です。"
            }
            p.meta { "票ID " (sheet_id) }
            form method="post" action={ "/sheets/" (sheet_id) "/identified" } {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="reason" { "理由（必須、" (max_chars) "文字以内。患者の氏名などは書かないでください）" }
                textarea #reason name="reason" required maxlength=(max_chars) rows="3"
                    aria-describedby=[error.map(|_| "reason-error")] { (reason) }
                @if let Some(e) = error {
                    span.field-error #reason-error role="alert" { (e) }
                }
                button.primary type="submit" { "理由を記録して開く" }
            }
        },
    )
}
