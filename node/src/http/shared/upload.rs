//! Uploaded files from a multipart request (一括登録 on screen and over the API): the files and
//! the other text fields (such as the CSRF token). Must never keep a file beyond the request or
//! log its content.

use std::collections::BTreeMap;

use axum::extract::Multipart;

/// Largest request body accepted for an upload of sealed files, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 256 * 1024 * 1024;

/// What a multipart request carried.
#[derive(Debug, Default)]
pub struct Upload {
    /// Fields with a file name: (file name, bytes), in the order sent.
    pub files: Vec<(String, Vec<u8>)>,
    /// Other fields: name → text.
    pub fields: BTreeMap<String, String>,
}

/// Reads every part of `multipart`. Errors in Japanese, saying what to do.
pub async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let mut up = Upload::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "アップロードを読み取れませんでした（{e}）。ファイルを選び直してください。"
                ));
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let file = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| {
            format!("アップロードを読み取れませんでした（{e}）。ファイルを選び直してください。")
        })?;
        match file {
            Some(f) if !f.is_empty() => {
                let base = f.rsplit(['/', '\\']).next().unwrap_or(&f).to_string();
                up.files.push((base, bytes.to_vec()));
            }
            Some(_) => {}
            None => {
                up.fields
                    .insert(name, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    Ok(up)
}
