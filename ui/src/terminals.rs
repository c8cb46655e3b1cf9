//! 端末証明書 (the 責任者's screen of terminal certificates, under ユーザ管理): the list (端末名,
//! 発行日, 有効期限, 状態, 操作 失効), the form that issues one for a named terminal, the page that
//! shows the PKCS#12 file's one-time password once with its download, and the 確認 page of a
//! revocation. Every action is a form posted with the CSRF token; no JavaScript.

use maud::{Markup, html};

use crate::{PageContext, layout};

/// One terminal certificate in the list.
#[derive(Debug, Clone)]
pub struct TerminalLine<'a> {
    pub serial: &'a str,
    /// 端末名.
    pub name: &'a str,
    /// 発行日, `YYYY-MM-DD`.
    pub issued_on: &'a str,
    /// 有効期限 (the last day), `YYYY-MM-DD`.
    pub expires_on: &'a str,
    /// 有効, 失効 or 期限切れ.
    pub state: &'a str,
    /// Offers 失効 (not revoked yet).
    pub revocable: bool,
}

/// The list and the issuing form.
#[derive(Debug, Clone)]
pub struct TerminalsView<'a> {
    pub rows: &'a [TerminalLine<'a>],
    /// The 端末名 typed, kept after a refusal.
    pub typed_name: &'a str,
    /// Why the issue was refused, beside the field.
    pub problem: Option<&'a str>,
    /// Whether this node requires terminal certificates (`client_certs = "required"`).
    pub required: bool,
    /// Days a certificate is valid.
    pub valid_days: i64,
}

/// 端末証明書: the list and the form that issues a certificate.
pub fn terminals(ctx: &PageContext<'_>, v: &TerminalsView<'_>) -> Markup {
    layout(
        ctx,
        "端末証明書",
        html! {
            p {
                @if v.required {
                    "このノードは端末証明書を必須にしています。証明書を取り込んだ端末（ブラウザ）だけが、ログイン画面を含むすべての画面に接続できます。"
                } @else {
                    "このノードは今は端末証明書を必須にしていません（設定 tls.client_certs = \"required\" で必須になります）。証明書は前もって発行し、端末に取り込んでおけます。"
                }
            }
            h2 { "発行" }
            form.issue method="post" action="/admin/terminals" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="terminal-name" { "端末名 " }
                input #terminal-name type="text" name="name" value=(v.typed_name) size="20"
                    maxlength="40" required placeholder="外来3番"
                    aria-invalid=[v.problem.map(|_| "true")]
                    aria-describedby=[v.problem.map(|_| "terminal-name-problem")];
                " "
                button.primary type="submit" { "発行する" }
                @if let Some(p) = v.problem {
                    p.error #terminal-name-problem role="alert" { (p) }
                }
            }
            p.hint {
                "発行すると、証明書ファイル（.p12）を一度だけダウンロードでき、取り込みに使う一回限りのパスワードを一度だけ表示します。"
                "有効期間は発行から" (v.valid_days) "日です。"
            }
            h2 { "発行済みの端末証明書" }
            @if v.rows.is_empty() {
                p { "まだ発行していません。" }
            } @else {
                table.list {
                    thead { tr {
                        th { "端末名" } th { "発行日" } th { "有効期限" } th { "状態" } th { "操作" }
                    } }
                    tbody {
                        @for r in v.rows {
                            tr {
                                td { (r.name) br; small.serial { "シリアル " (r.serial) } }
                                td { (r.issued_on) }
                                td { (r.expires_on) }
                                td { (r.state) }
                                td.actions {
                                    @if r.revocable {
                                        form.inline method="post" action={ "/admin/terminals/" (r.serial) "/revoke" } {
                                            input type="hidden" name="csrf" value=(ctx.csrf);
                                            button type="submit" aria-label={ (r.name) "を失効" } { "失効" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.hint {
                "失効させた証明書の端末は、次の接続から接続できなくなります（再起動は不要です）。"
                "端末を廃棄・移設するとき、証明書ファイルやパスワードを失くしたときは失効させてください。"
            }
        },
    )
}

/// The certificate just issued: its one-time password, once, and its download.
pub fn issued(
    ctx: &PageContext<'_>,
    name: &str,
    expires_on: &str,
    password: &str,
    download: &str,
) -> Markup {
    layout(
        ctx,
        "端末証明書の発行",
        html! {
            p.notice role="status" { "端末「" (name) "」の端末証明書を発行しました（有効期限 " (expires_on) "）。" }
            form method="post" action=(download) {
                input type="hidden" name="csrf" value=(ctx.csrf);
                button.primary type="submit" { "証明書ファイル（.p12）をダウンロード" }
            }
            p { "取り込み用パスワード: " code.initial-password { (password) } }
            p.hint {
                "このパスワードはこの画面でだけ表示され、保存されません。ファイルのダウンロードも一度だけ、発行から10分以内です。"
                "ファイルとパスワードは別々に（パスワードは紙などで）端末の担当者に渡してください。"
            }
            h2 { "端末への取り込み（Chrome・Edge、Windows）" }
            ol {
                li { "端末で .p12 ファイルを開く（ダブルクリック）と「証明書のインポート ウィザード」が開きます。「現在のユーザー」を選んで次へ進みます。" }
                li { "パスワードに上の取り込み用パスワードを入力します。「秘密キーのエクスポートを可能にする」にはチェックを付けません。" }
                li { "証明書ストアは「自動的に選択する」のまま完了します。取り込んだら .p12 ファイルは削除してください。" }
                li { "ブラウザを開き直してこのノードに接続すると、証明書の選択画面が出ます。この端末名の証明書を選びます。" }
            }
            p { a href="/admin/terminals" { "端末証明書の一覧に戻る" } }
        },
    )
}

/// The 確認 page of a revocation.
pub fn confirm_revoke(ctx: &PageContext<'_>, name: &str, serial: &str) -> Markup {
    layout(
        ctx,
        "端末証明書の失効の確認",
        html! {
            p { "対象: " strong { (name) } "（シリアル " (serial) "）" }
            ul.effects {
                li { "この証明書の端末は、次の接続からこのノードに接続できなくなります（ログイン画面も開けません）。" }
                li { "失効は取り消せません。同じ端末を使い続けるには、新しい証明書を発行して取り込み直します。" }
            }
            form method="post" action={ "/admin/terminals/" (serial) "/revoke" } {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="confirmed" value="yes";
                button.primary type="submit" { "失効させる" }
                " "
                a.button href="/admin/terminals" { "キャンセル" }
            }
        },
    )
}
