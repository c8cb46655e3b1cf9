//! The sheet list (臨床調査個人票検索, M9): the search box and the columns of the ministry's design.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One line of the list, already in display form.
#[derive(Debug, Clone, Default)]
pub struct ListRow {
    pub id: String,
    /// 新規 / 更新
    pub application_type: String,
    pub insurer_no: String,
    pub insured_no: String,
    pub access_key: String,
    pub name_kana: String,
    pub birth_date: String,
    pub sex: String,
    pub kokuji: String,
    pub disease: String,
    pub doctor_name: String,
    pub written_date: String,
    pub linked_date: String,
    /// 審査結果 (認定 / 不認定 / 保留) of the latest decided review; empty until decided.
    pub review_result: String,
    /// 照会: e.g. 「照会 1件」 while a question waits for an answer; empty when none.
    pub inquiry: String,
    pub status: String,
    pub registration: String,
    pub can_edit: bool,
    pub can_renew: bool,
    pub can_release: bool,
    /// Shows a check box for 一括承認.
    pub can_approve: bool,
}

/// The list's filters, as given.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub status: String,
    pub kokuji: String,
    pub doctor: String,
    pub from: String,
    pub to: String,
}

/// The choices of the filters.
#[derive(Debug, Clone, Default)]
pub struct FilterChoices {
    pub statuses: Vec<(String, String)>,
    pub diseases: Vec<(String, String)>,
    pub doctors: Vec<(String, String)>,
}

/// The list page's data.
#[derive(Debug, Clone, Default)]
pub struct ListView {
    pub query: String,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub rows: Vec<ListRow>,
    /// Counting stops here; `total` above it means "more than this".
    pub count_limit: u64,
    pub filters: Filters,
    pub choices: FilterChoices,
    /// Shows 一括承認.
    pub bulk_approve: bool,
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "―" } else { s }
}

pub fn sheet_list(ctx: &PageContext<'_>, v: &ListView) -> Markup {
    let pages = v
        .total
        .min(v.count_limit)
        .div_ceil(v.page_size.max(1) as u64)
        .max(1) as u32;
    let f = &v.filters;
    let q = format!(
        "q={}&status={}&kokuji={}&doctor={}&from={}&to={}",
        urlencode(&v.query),
        urlencode(&f.status),
        urlencode(&f.kokuji),
        urlencode(&f.doctor),
        urlencode(&f.from),
        urlencode(&f.to)
    );
    layout(
        ctx,
        "臨床調査個人票検索",
        html! {
            form.search method="get" action="/sheets" role="search" {
                label for="q" { "氏名（カナ・漢字）・被保険者番号・保険者番号・アクセスキー" }
                input #q name="q" type="search" value=(v.query) autofocus aria-describedby="q-hint";
                button.primary type="submit" { "検索" }
                a.button href="/sheets" { "クリア" }
                p.hint #q-hint {
                    "氏名はカナ（ひらがな・半角も可）または漢字の先頭から、番号とアクセスキーは全桁（ハイフンは有っても無くても可）で探します。"
                }
                div.filters {
                    (select("status", "ステータス", &f.status, &v.choices.statuses))
                    (select("kokuji", "病名", &f.kokuji, &v.choices.diseases))
                    (select("doctor", "指定医", &f.doctor, &v.choices.doctors))
                    label for="from" { "記載年月日（から）" }
                    (crate::date_input("from", "from", &f.from, false))
                    label for="to" { "記載年月日（まで）" }
                    (crate::date_input("to", "to", &f.to, false))
                }
            }
            @if v.bulk_approve {
                form #bulk method="post" action="/sheets/approve" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    div.bulk {
                        button type="submit" { "一括承認" }
                        span.help { "承認する登録済の行にチェックを付けてから押してください。" }
                    }
                }
            }
            p.count {
                @if v.total > v.count_limit {
                    "検索結果件数 " (v.count_limit) "件以上（条件を加えて絞り込んでください）"
                } @else {
                    "検索結果件数 " (v.total) "件"
                    @if pages > 1 { "（" (v.page) "/" (pages) "頁）" }
                }
            }
            table.list {
                thead {
                    tr {
                        @if v.bulk_approve { th { span.sr { "選択" } } }
                        th { "申請種別" } th { "保険者番号/" br; "被保険者番号" } th { "アクセスキー" }
                        th { "氏名カナ" } th { "生年月日" } th { "性別" }
                        th { "告示番号・" br; "疾病番号/病名" } th { "指定医氏名" }
                        th { "作成年月日/" br; "自治体連携日" } th { "審査結果" } th { "ステータス/" br; "登録種別" } th { "操作" }
                    }
                }
                tbody {
                    @for r in &v.rows {
                        tr {
                            @if v.bulk_approve {
                                td {
                                    @if r.can_approve {
                                        input type="checkbox" form="bulk" name="id" value=(r.id)
                                            aria-label={ (r.name_kana) " を承認対象にする" };
                                    }
                                }
                            }
                            td { (or_dash(&r.application_type)) }
                            td { (or_dash(&r.insurer_no)) "/" br; (or_dash(&r.insured_no)) }
                            td { (or_dash(&r.access_key)) }
                            td { (or_dash(&r.name_kana)) }
                            td { (or_dash(&r.birth_date)) }
                            td { (or_dash(&r.sex)) }
                            td { (r.kokuji) "/" br; (r.disease) }
                            td { (or_dash(&r.doctor_name)) }
                            td { (or_dash(&r.written_date)) "/" br; (or_dash(&r.linked_date)) }
                            td.review-result {
                                (or_dash(&r.review_result))
                                @if !r.inquiry.is_empty() { br; span.badge.inquiry-badge { (r.inquiry) } }
                            }
                            td { (r.status) "/" br; (r.registration) }
                            td.actions {
                                a href={ "/sheets/" (r.id) } { "閲覧" }
                                @if r.can_edit { a href={ "/sheets/" (r.id) "/edit" } { "編集" } }
                                @if r.can_renew { (row_action(ctx, &r.id, "renew", "更新登録")) }
                                @if r.can_release { (row_action(ctx, &r.id, "release", "解除")) }
                                a href={ "/sheets/" (r.id) "/xml" } title="XML（公開レイアウト）で保存" { "データ出力" }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="ページ" {
                    @if v.page > 1 { a href={ "/sheets?" (q) "&page=" (v.page - 1) } rel="prev" { "前へ" } }
                    span.pages { (v.page) " / " (pages) "頁" }
                    @if v.page < pages { a href={ "/sheets?" (q) "&page=" (v.page + 1) } rel="next" { "次へ" } }
                }
            }
        },
    )
}

fn select(name: &str, label: &str, current: &str, choices: &[(String, String)]) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { "すべて" }
                @for (value, text) in choices {
                    option value=(value) selected[value == current] { (text) }
                }
            }
        }
    }
}

fn row_action(ctx: &PageContext<'_>, id: &str, path: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/sheets/" (id) "/" (path) } {
            input type="hidden" name="csrf" value=(ctx.csrf);
            button.link type="submit" { (label) }
        }
    }
}

/// Percent-encodes a query value for a link.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
