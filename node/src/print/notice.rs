//! IDパスワード通知書: one A4 page telling a user their institution, user ID, name and one-time
//! initial password, for the 責任者 to hand over. Made at the moment of issue from the values
//! passed in; this module must never keep, log or write the password anywhere but the returned
//! bytes.

use krilla::Document;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;

use super::PrintError;
use super::draw::Pen;
use super::layout::{CONTENT_W, MARGIN_X, PAGE_H, PAGE_W};
use super::text::Face;

/// What the notice says.
#[derive(Clone, Copy)]
pub struct CredentialsNotice<'a> {
    /// 医療機関名 and 医療機関コード.
    pub institution_name: &'a str,
    pub institution_code: &'a str,
    pub login: &'a str,
    pub name: &'a str,
    /// ユーザ種別 as people read it.
    pub kind: &'a str,
    /// The one-time initial password.
    pub password: &'a str,
    /// When it was issued, already formatted (e.g. 「2026-12-01 09:30 JST」).
    pub issued_at: &'a str,
}

impl std::fmt::Debug for CredentialsNotice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsNotice")
            .field("login", &self.login)
            .field("password", &"..")
            .finish()
    }
}

/// The notice as a one-page A4 PDF. The document's title names the user ID, never the
/// password. Errors: [`PrintError::Font`], [`PrintError::Pdf`].
pub fn credentials_notice_pdf(n: &CredentialsNotice<'_>) -> Result<Vec<u8>, PrintError> {
    let face = Face::load()?;
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(format!("IDパスワード通知書 {}", n.login))
            .language("ja".to_string())
            .creator("nsdb".to_string()),
    );
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| PrintError::Pdf("用紙サイズ".to_string()))?;
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();
    let mut pen = Pen {
        surface: &mut surface,
        face: &face,
    };
    let x = MARGIN_X;
    pen.text(x, 80.0, 20.0, 0, "IDパスワード通知書");
    pen.text_right(
        x + CONTENT_W,
        80.0,
        9.0,
        60,
        &format!("発行日時 {}", n.issued_at),
    );
    pen.hline(x, x + CONTENT_W, 92.0, 1.0, 0);
    pen.text(
        x,
        120.0,
        10.5,
        0,
        "難病・小慢データベース（nsdb）の利用者IDと初期パスワードをお知らせします。",
    );
    let rows = [
        ("医療機関名", n.institution_name.to_string()),
        ("医療機関コード", n.institution_code.to_string()),
        ("ユーザ種別", n.kind.to_string()),
        ("氏名", n.name.to_string()),
        ("ユーザID", n.login.to_string()),
        ("初期パスワード", n.password.to_string()),
    ];
    let mut top = 150.0;
    for (label, value) in rows {
        pen.fill_rect(x, top, 130.0, 32.0, 235);
        pen.stroke_rect(x, top, CONTENT_W, 32.0, 0.6, 80);
        pen.text(x + 10.0, top + 21.0, 11.0, 0, label);
        let size = if label == "初期パスワード" {
            16.0
        } else {
            12.0
        };
        pen.text(x + 145.0, top + 22.0, size, 0, &value);
        top += 32.0;
    }
    let notes = [
        "・初期パスワードは一度限りのものです。最初のログインで、ご自身のパスワードに変更してください。",
        "・新しいパスワードは10文字以上で、ユーザIDを含まないものにしてください。",
        "・この通知書は本人だけが見られるように保管し、パスワード変更後は破棄してください。",
        "・通知書を再発行すると初期パスワードは新しいものに変わり、この通知書のものは使えません。",
        "・ログインできないときは、所属の責任者（ユーザ管理の担当者）に連絡してください。",
    ];
    top += 30.0;
    for note in notes {
        pen.text(x, top, 9.5, 0, note);
        top += 18.0;
    }
    surface.finish();
    page.finish();
    document
        .finish()
        .map_err(|e| PrintError::Pdf(e.to_string()))
}
