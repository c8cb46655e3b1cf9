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

/// The most bytes kept of one part: the largest file any upload takes (a sealed file, 24 MiB)
/// and one byte more, so that the part's own check can still say it is too large. The rest of a
/// larger part is read and dropped, never held.
pub const MAX_PART_BYTES: usize = nsdb_provisioning::sealed::MAX_SEALED_BYTES + 1;

/// Why an upload could not be read, in Japanese, saying what to do.
fn unreadable(e: &axum::extract::multipart::MultipartError) -> String {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "アップロード全体が大きすぎます（上限 {} MB）。ファイルを分けてアップロードしてください。",
            MAX_UPLOAD_BYTES / (1024 * 1024)
        )
    } else {
        "アップロードを読み取れませんでした（途中で切れているか、形式が違います）。ファイルを選び直してください。".to_string()
    }
}

/// Reads every part of `multipart`, keeping at most [`MAX_PART_BYTES`] of each. Errors in
/// Japanese, saying what to do.
pub async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let mut up = Upload::default();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(unreadable(&e)),
        };
        let name = field.name().unwrap_or_default().to_string();
        let file = field.file_name().map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| unreadable(&e))? {
            let room = MAX_PART_BYTES.saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        match file {
            Some(f) if !f.is_empty() => {
                let base = f.rsplit(['/', '\\']).next().unwrap_or(&f).to_string();
                up.files.push((base, bytes));
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
