//! The user's own account screens: the code step of sign-in, 2段階認証の設定 (TOTP
//! enrolment), 再認証 before a sensitive action, and パスワード変更. Views only: whether a code
//! or password is right is decided by the node.

use maud::{Markup, PreEscaped, html};

use crate::{PageContext, Resume, held_fields, layout, page};

/// The second page of a sign-in for a user who has enrolled the second factor: the code their
/// app shows. `resume` carries a sheet's form held since the session expired (as on the
/// sign-in page).
pub fn login_code(
    node_label: &str,
    csrf: &str,
    error: Option<&str>,
    resume: Option<Resume<'_>>,
) -> Markup {
    page(
        "2段階認証",
        html! {
            main #main .login {
                h1 { "nsdb 難病・小慢データベース" }
                p.node { (node_label) }
                @if let Some(e) = error {
                    p.error role="alert" { (e) }
                }
                p { "認証アプリ（Google Authenticator、Microsoft Authenticator など）に表示されている6桁の確認コードを入力してください。5分以内に入力しないと、ログインをやり直すことになります。" }
                form method="post" action="/login/code" {
                    input type="hidden" name="csrf" value=(csrf);
                    @if let Some(r) = resume {
                        input type="hidden" name="_resume_sheet" value=(r.sheet_id);
                        input type="hidden" name="_resume_body" value=(r.body);
                    }
                    label for="code" { "確認コード" }
                    input #code name="code" inputmode="numeric" autocomplete="one-time-code"
                        pattern="[0-9 ]*" maxlength="7" required autofocus;
                    button.primary type="submit" { "ログイン" }
                }
                p { a href="/login" { "ログインをやり直す" } }
            }
        },
    )
}

/// What the enrolment screen shows.
#[derive(Debug, Clone)]
pub enum TotpSetup<'a> {
    /// A new secret, shown once: its QR code (an inline SVG element made by the server), the
    /// same secret as base32 text, and a field for the first code.
    New {
        qr_svg: &'a str,
        secret_base32: &'a str,
        /// Whether the user's kind must enrol before doing anything else.
        required: bool,
        error: Option<&'a str>,
    },
    /// The user has enrolled; `just_now` right after the first code was accepted.
    Enrolled { just_now: bool },
}

/// 2段階認証の設定.
pub fn totp_setup(ctx: &PageContext<'_>, setup: TotpSetup<'_>) -> Markup {
    let body = match setup {
        TotpSetup::Enrolled { just_now } => html! {
            @if just_now {
                p.notice role="status" { "2段階認証を設定しました。次のログインから、パスワードの後に確認コードを入力します。" }
            } @else {
                p { "2段階認証は設定済みです。" }
            }
            p { "スマートフォンを紛失・機種変更したときは、所属の責任者（ユーザ管理の担当者）に2段階認証の初期化を依頼してください。初期化の後、ログインするとこの画面で設定し直せます。" }
            p { a href="/" { "トップへ" } }
        },
        TotpSetup::New {
            qr_svg,
            secret_base32,
            required,
            error,
        } => html! {
            @if required {
                p.notice role="status" { "この種別の利用者は、2段階認証を設定するまで他の操作はできません。" }
            }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            ol {
                li { "スマートフォンの認証アプリ（Google Authenticator、Microsoft Authenticator など）で、次のQRコードを読み取ってください。" }
                li { "読み取れないときは、アプリに次のキーを手で入力してください（時間ベース、6桁、30秒）。" }
                li { "アプリに表示された6桁の確認コードを下の欄に入力して「設定する」を押してください。正しいコードを入力するまで設定は有効になりません。" }
            }
            figure.totp-qr { (PreEscaped(qr_svg)) }
            p { "キー: " code #totp-secret { (secret_base32) } }
            p.hint { "このキーとQRコードはこの画面にだけ表示されます。画面を開き直すと新しいキーになります。" }
            form method="post" action="/account/totp" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="code" { "確認コード" }
                input #code name="code" inputmode="numeric" autocomplete="one-time-code"
                    pattern="[0-9 ]*" maxlength="7" required autofocus;
                button.primary type="submit" { "設定する" }
            }
        },
    };
    layout(ctx, "2段階認証の設定", body)
}

/// 再認証: the password (and the code, `ask_code`) again before a sensitive action. The form
/// posts to `action` with `fields` (the action's own form as it was posted, or where to
/// return for a page) held unchanged, so the action continues with nothing typed lost.
pub fn reauth(
    ctx: &PageContext<'_>,
    action: &str,
    fields: &[(String, String)],
    error: Option<&str>,
    ask_code: bool,
) -> Markup {
    layout(
        ctx,
        "再認証",
        html! {
            p { "利用者の管理やデータの一括出力の前には、パスワードをもう一度入力していただきます（最後の入力から5分間は不要です）。入力すると、そのまま元の操作を続けます。" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            form method="post" action=(action) {
                (held_fields(fields))
                label for="reauth-password" { "パスワード" }
                input #reauth-password name="_reauth_password" type="password"
                    autocomplete="current-password" required autofocus;
                @if ask_code {
                    label for="reauth-code" { "確認コード（認証アプリの6桁）" }
                    input #reauth-code name="_reauth_code" inputmode="numeric"
                        autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="7" required;
                }
                button.primary type="submit" { "続ける" }
            }
        },
    )
}

/// What the password change screen says.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordForm<'a> {
    /// Beside the current password (wrong password).
    pub current_error: Option<&'a str>,
    /// Beside the new password (the rule's message, or the two differ).
    pub new_error: Option<&'a str>,
    /// The password was set by someone else and must be changed before anything else.
    pub required: bool,
    /// The change was just made.
    pub done: bool,
}

/// パスワード変更.
pub fn password_change(ctx: &PageContext<'_>, f: PasswordForm<'_>) -> Markup {
    layout(
        ctx,
        "パスワード変更",
        html! {
            @if f.done {
                p.notice role="status" { "パスワードを変更しました。他の端末でのログインは終了しました。" }
                p { a href="/" { "トップへ" } }
            } @else {
                @if f.required {
                    p.notice role="status" { "このパスワードは他の人が設定したものです。自分だけが知るパスワードに変更するまで、他の操作はできません。" }
                }
                form method="post" action="/account/password" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    label for="current" { "現在のパスワード" }
                    input #current name="current" type="password" autocomplete="current-password" required
                        aria-describedby=[f.current_error.map(|_| "current-error")];
                    @if let Some(e) = f.current_error {
                        p.error #current-error role="alert" { (e) }
                    }
                    label for="new" { "新しいパスワード" }
                    input #new name="new" type="password" autocomplete="new-password" required
                        aria-describedby="new-hint";
                    p.hint #new-hint { "10文字以上。空白だけ・同じ文字や同じ並びの繰り返し・ユーザIDを（逆順でも）含むもの・よく使われるパスワードは使えません。" }
                    @if let Some(e) = f.new_error {
                        p.error #new-error role="alert" { (e) }
                    }
                    label for="new2" { "新しいパスワード（確認のためもう一度）" }
                    input #new2 name="new2" type="password" autocomplete="new-password" required;
                    button.primary type="submit" { "変更する" }
                }
            }
        },
    )
}
