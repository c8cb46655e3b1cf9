//! 臨個票連携 / 意見書連携 at a hospital: the access key a transferring patient brings (and the
//! birth date), 検索 and クリア, the result row in the list's columns with 閲覧, 更新登録 and
//! データ出力, and the keys this node resolved before. Renders what it is given; decides
//! nothing.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One row of the result table, in display form.
#[derive(Debug, Clone, Default)]
pub struct LinkageLine {
    pub sheet_id: String,
    /// 申請種別: 新規 / 更新.
    pub application_type: String,
    /// 保険者番号 / 被保険者番号.
    pub insurance: String,
    /// アクセスキー as printed.
    pub access_key: String,
    pub name_kana: String,
    /// 生年月日, e.g. 1980/04/01.
    pub birth_date: String,
    /// 性別: 男 / 女.
    pub sex: String,
    /// 告示番号 / 枝番 / 病名.
    pub disease: String,
    pub doctor_name: String,
    /// 作成年月日.
    pub written_date: String,
    /// 自治体連携日.
    pub linked_date: String,
    /// ステータス / 登録種別.
    pub status: String,
    /// Whether the sheet has arrived by sync (閲覧 and データ出力 need it).
    pub arrived: bool,
}

/// The 臨個票連携 page.
#[derive(Debug, Clone, Default)]
pub struct LinkageView {
    /// What was typed, kept after a failed search.
    pub access_key: String,
    pub birth_date: String,
    /// Why the last search gave nothing (not found, hub unreachable, …).
    pub problem: Option<String>,
    /// The found row, after a search.
    pub found: Option<LinkageLine>,
    /// Keys resolved here before, newest first.
    pub earlier: Vec<LinkageLine>,
}

fn row(ctx: &PageContext<'_>, l: &LinkageLine) -> Markup {
    html! {
        tr {
            td { (l.application_type) }
            td { (l.insurance) }
            td.key { (l.access_key) }
            td { (l.name_kana) }
            td { (l.birth_date) }
            td { (l.sex) }
            td { (l.disease) }
            td { (l.doctor_name) }
            td { (l.written_date) }
            td { (l.linked_date) }
            td { (l.status) }
            td.actions {
                @if l.arrived {
                    a.view href={ "/sheets/" (l.sheet_id) } { "閲覧" }
                    " "
                    form.inline method="post" action={ "/sheets/" (l.sheet_id) "/renew" } {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        button.renew type="submit" { "更新登録" }
                    }
                    " "
                    a.export href={ "/sheets/" (l.sheet_id) "/xml" } { "データ出力" }
                } @else {
                    span.waiting title="ハブから同期されるまでお待ちください" { "同期待ち" }
                }
            }
        }
    }
}

fn table(ctx: &PageContext<'_>, id: &str, lines: &[LinkageLine]) -> Markup {
    html! {
        table.list id=(id) {
            thead { tr {
                th { "申請種別" } th { "保険者番号/被保険者番号" } th { "アクセスキー" } th { "氏名カナ" }
                th { "生年月日" } th { "性別" } th { "告示番号/枝番/病名" } th { "指定医氏名" }
                th { "作成年月日" } th { "自治体連携日" } th { "ステータス/登録種別" } th { "操作" }
            } }
            tbody { @for l in lines { (row(ctx, l)) } }
        }
    }
}

/// The page: the search form, the result, the keys resolved before.
pub fn linkage_page(ctx: &PageContext<'_>, v: &LinkageView) -> Markup {
    layout(
        ctx,
        "臨個票連携",
        html! {
            p { "転院などで患者さんが持参したアクセスキーと生年月日を入力して検索してください。見つかった臨床調査個人票・医療意見書はハブから同期され、閲覧・更新登録・データ出力ができます（他院の票は読み取り専用です）。" }
            form.search method="post" action="/linkage" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                p {
                    label for="access_key" { "アクセスキー " span.required { "必須" } }
                    " "
                    input #access_key name="access_key" value=(v.access_key) required
                        inputmode="numeric" autocomplete="off" placeholder="12345-67890-1";
                }
                p {
                    label for="birth_date" { "生年月日 " span.required { "必須" } }
                    " "
                    input #birth_date name="birth_date" value=(v.birth_date) required
                        autocomplete="off" placeholder="1980-04-01";
                }
                button.primary #search type="submit" { "検索" }
                " "
                a.button #clear href="/linkage" { "クリア" }
            }
            @if let Some(p) = &v.problem { p.error role="alert" { (p) } }
            @if let Some(found) = &v.found {
                h2 { "検索結果" }
                (table(ctx, "result", std::slice::from_ref(found)))
            }
            @if !v.earlier.is_empty() {
                h2 { "連携済み" }
                (table(ctx, "earlier", &v.earlier))
            }
        },
    )
}
