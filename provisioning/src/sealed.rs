//! The check tool's files for bulk registration (一括登録), the seed's items (4) and (5):
//!
//! - **Key information** (鍵情報, [`KeyInfo`]): issued by the receiving node, signed by the hub; it
//!   names the node, the age X25519 recipient files for it are encrypted to, and the last day it
//!   may be used. The check tool imports it only if the hub's signature verifies and it has not
//!   expired ([`KeyInfo::verify`]).
//! - **Sealed sheet** ([`seal`], [`open`]): one sheet's XML, encrypted with age to the node's
//!   recipient, then signed (over the header and the ciphertext) with the hospital user's
//!   ed25519 key ([`UserKey`]). The signed header carries the check tool's version and the
//!   rule-pack version, so the node can refuse an outdated file before decrypting it ([`peek`]).
//!
//! A sealed file is JSON: `{"format", "header", "body", "signer", "signature"}`; `header` is a
//! JSON text (`{"tool_version", "rule_pack_version", "recipient", "node_name"}`), `body` the age
//! file in base64, `signer` the user's public key in hex, and `signature` an ed25519 signature
//! (hex) over `format + "\n" + header + "\n" + body` exactly as written, so no canonical form is
//! needed. Anyone can decrypt a body with the node's identity and `age -d`.
//!
//! This module never decrypts what it has not verified, never returns contents it could not
//! authenticate, and never writes a secret key anywhere but an owner-only file.

use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{NodeIdentity, ProvisioningError, load_signing_key, random_bytes, write_secret_file};

/// The format tag of a key information file.
pub const KEY_INFO_FORMAT: &str = "nsdb-key-info/1";
/// The format tag of a sealed sheet.
pub const SEALED_FORMAT: &str = "nsdb-sealed-sheet/1";
/// Largest sealed file opened, in bytes (a 16 MiB XML file in base64 with its header).
pub const MAX_SEALED_BYTES: usize = 24 * 1024 * 1024;

/// Why a key information file or a sealed sheet was refused, said so that the clerk or the
/// operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Secret(#[from] ProvisioningError),
    #[error(
        "鍵情報ファイルとして読めません（{0}）。受け取り先ノードが発行した鍵情報ファイルを選んでください。"
    )]
    KeyInfoMalformed(String),
    #[error(
        "鍵情報の署名を確認できません。ファイルが変更されたか、ハブが発行したものではありません。ハブの署名付きの鍵情報を受け取り直してください。"
    )]
    KeyInfoSignature,
    #[error(
        "鍵情報はハブの鍵 {found}… で署名されていますが、このツールが信頼するハブの鍵は {expected}… です。正しいハブが発行した鍵情報を使ってください。"
    )]
    KeyInfoUntrustedHub { found: String, expected: String },
    #[error(
        "鍵情報の有効期限（{expires}）が切れています。受け取り先ノードから新しい鍵情報を受け取ってください。"
    )]
    KeyInfoExpired { expires: String },
    #[error(
        "鍵情報のノード（{0}…）はハブに登録されていないか、登録を取り消されています。ノードを登録してから発行してください。"
    )]
    KeyInfoNotEnrolled(String),
    #[error("ハブの設定を読めません: {0}")]
    Hub(String),
    #[error("日付「{0}」は YYYY-MM-DD の形ではありません。")]
    BadDate(String),
    #[error(
        "暗号化ファイルとして読めません（{0}）。チェックツールが出力したファイルを選んでください。"
    )]
    Malformed(String),
    #[error(
        "このファイルの形式「{0}」には対応していません。最新のチェックツールで作り直してください。"
    )]
    Format(String),
    #[error(
        "このファイルに署名した利用者の鍵（{key}…）は登録されていません。登録済みの利用者の鍵でチェックツールから作り直すか、利用者の鍵を登録してください。"
    )]
    UnknownSigner { key: String },
    #[error(
        "このファイルは作成後に変更されたか、壊れています。チェックツールで作り直してください。"
    )]
    Tampered,
    #[error(
        "このファイルは別のノード宛てに暗号化されています（ファイルに書かれた宛先: {node}）。このノードの鍵情報をチェックツールに取り込み直して、作り直してください。"
    )]
    /// `node` is the name the file's header states: said before the signature is checked, so
    /// the message attributes it to the file rather than vouching for it.
    OtherNode { node: String },
    #[error("暗号化できませんでした: {0}")]
    Encrypt(String),
}

/// A hospital user's signing key (ed25519), kept like every key: 64 hexadecimal characters in
/// an owner-only file. Its public half is registered on the node, which accepts sealed files
/// signed by registered users only.
pub struct UserKey {
    key: SigningKey,
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserKey")
            .field("public", &hex::encode(self.public_key()))
            .finish()
    }
}

impl UserKey {
    pub fn generate() -> Result<UserKey, ProvisioningError> {
        Ok(UserKey {
            key: SigningKey::from_bytes(&random_bytes()?),
        })
    }

    /// Creates a new key file (mode 600); refuses to overwrite an existing one.
    pub fn create(path: &Path) -> Result<UserKey, ProvisioningError> {
        let key = UserKey::generate()?;
        key.write(path)?;
        Ok(key)
    }

    /// Writes the key to a new file (mode 600); refuses to overwrite an existing one.
    pub fn write(&self, path: &Path) -> Result<(), ProvisioningError> {
        write_secret_file(path, &self.key_file_text())
    }

    pub fn load(path: &Path) -> Result<UserKey, ProvisioningError> {
        Ok(UserKey {
            key: load_signing_key(path)?,
        })
    }

    /// The text of the key's file (64 hexadecimal characters, what [`UserKey::create`] writes
    /// and [`UserKey::load`] reads), for handing a key made on the node to its user as a
    /// download (暗号鍵再発行). Secret: never log or store it.
    pub fn key_file_text(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The public key, as the node registers it.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

/// A node's key for sealed files: an age X25519 identity (`AGE-SECRET-KEY-1…`) in an
/// owner-only file. Its recipient (`age1…`) goes into the key information.
pub struct SealKey {
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey")
            .field("recipient", &self.recipient())
            .finish()
    }
}

impl SealKey {
    pub fn generate() -> SealKey {
        SealKey {
            identity: age::x25519::Identity::generate(),
        }
    }

    /// Loads the key at `path`, creating it (mode 600) if there is none yet.
    pub fn load_or_create(path: &Path) -> Result<SealKey, ProvisioningError> {
        if !path.exists() {
            let key = SealKey::generate();
            write_secret_file(path, key.identity.to_string().expose_secret())?;
            return Ok(key);
        }
        SealKey::load(path)
    }

    pub fn load(path: &Path) -> Result<SealKey, ProvisioningError> {
        let text = crate::read_secret_file(path)?;
        let identity = age::x25519::Identity::from_str(text.trim()).map_err(|_| {
            ProvisioningError::Malformed {
                path: path.to_path_buf(),
            }
        })?;
        Ok(SealKey { identity })
    }

    /// The recipient files for this node are encrypted to (`age1…`).
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }
}

/// Key information (鍵情報): what the check tool needs to seal files for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// [`KEY_INFO_FORMAT`].
    pub format: String,
    /// The node's name as the clerk knows it (e.g. ○○県 難病指定医療機関ノード).
    pub node_name: String,
    /// The node's ed25519 identity, 64 hexadecimal characters.
    pub node_key: String,
    /// The age X25519 recipient files are encrypted to (`age1…`).
    pub recipient: String,
    /// The last day the key information may be used, `YYYY-MM-DD`.
    pub expires: String,
    /// The hub's public key (hex) that signed it; empty until signed.
    #[serde(default)]
    pub hub_key: String,
    /// ed25519 signature by the hub (hex) over [`KeyInfo::signed_text`]; empty until signed.
    #[serde(default)]
    pub signature: String,
}

/// Key information whose signature and expiry were checked; the only thing [`seal`] takes.
#[derive(Debug, Clone)]
pub struct VerifiedKeyInfo {
    info: KeyInfo,
    recipient: age::x25519::Recipient,
}

impl VerifiedKeyInfo {
    pub fn info(&self) -> &KeyInfo {
        &self.info
    }
}

impl KeyInfo {
    /// The node's unsigned key information, to be signed by the hub. `expires` is `YYYY-MM-DD`.
    pub fn request(
        node: &NodeIdentity,
        node_name: &str,
        seal: &SealKey,
        expires: &str,
    ) -> Result<KeyInfo, SealError> {
        check_date(expires)?;
        if node_name.contains(['\n', '\r']) || node_name.trim().is_empty() {
            return Err(SealError::KeyInfoMalformed(
                "ノード名は1行で書いてください".into(),
            ));
        }
        Ok(KeyInfo {
            format: KEY_INFO_FORMAT.into(),
            node_name: node_name.into(),
            node_key: hex::encode(node.public_key().as_bytes()),
            recipient: seal.recipient(),
            expires: expires.into(),
            hub_key: String::new(),
            signature: String::new(),
        })
    }

    /// The same key information signed by the hub.
    pub fn sign(mut self, hub: &NodeIdentity) -> KeyInfo {
        self.hub_key = hex::encode(hub.public_key().as_bytes());
        self.signature = hex::encode(hub.sign(self.signed_text().as_bytes()).to_bytes());
        self
    }

    /// Signs the key information on the hub whose data directory is `dir`, if the node it
    /// names is enrolled there and not revoked.
    pub fn sign_on_hub(self, dir: &Path) -> Result<KeyInfo, SealError> {
        let registry =
            crate::enrollment::registry(dir).map_err(|e| SealError::Hub(e.to_string()))?;
        let hub = crate::enrollment::identity(dir).map_err(|e| SealError::Hub(e.to_string()))?;
        // The hub's own key information (clinics register on the hub) is the hub's to sign.
        let own = self.node_key == hex::encode(hub.public_key().as_bytes());
        let enrolled = registry
            .nodes
            .iter()
            .any(|n| n.public_key == self.node_key && !n.revoked);
        if !(own || enrolled) {
            return Err(SealError::KeyInfoNotEnrolled(prefix(&self.node_key)));
        }
        Ok(self.sign(&hub))
    }

    /// The exact text the hub signs: every field on its own line.
    pub fn signed_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n",
            self.format, self.node_name, self.node_key, self.recipient, self.expires, self.hub_key
        )
    }

    /// Checks the hub's signature against `hub_key` (the hub the tool trusts) and that `today`
    /// (`YYYY-MM-DD`) is not after `expires`.
    pub fn verify(&self, hub_key: &[u8; 32], today: &str) -> Result<VerifiedKeyInfo, SealError> {
        if self.format != KEY_INFO_FORMAT {
            return Err(SealError::KeyInfoMalformed(format!(
                "形式「{}」",
                self.format
            )));
        }
        let expected = hex::encode(hub_key);
        if self.hub_key != expected {
            return Err(SealError::KeyInfoUntrustedHub {
                found: prefix(&self.hub_key),
                expected: prefix(&expected),
            });
        }
        let hub = VerifyingKey::from_bytes(hub_key).map_err(|_| SealError::KeyInfoSignature)?;
        let lines_ok = [
            &self.node_name,
            &self.node_key,
            &self.recipient,
            &self.expires,
        ]
        .iter()
        .all(|f| !f.contains(['\n', '\r']));
        let signature = parse_signature(&self.signature).ok_or(SealError::KeyInfoSignature)?;
        if !lines_ok
            || hub
                .verify(self.signed_text().as_bytes(), &signature)
                .is_err()
        {
            return Err(SealError::KeyInfoSignature);
        }
        check_date(&self.expires)?;
        check_date(today)?;
        if today > self.expires.as_str() {
            return Err(SealError::KeyInfoExpired {
                expires: self.expires.clone(),
            });
        }
        let recipient = age::x25519::Recipient::from_str(&self.recipient)
            .map_err(|e| SealError::KeyInfoMalformed(e.to_string()))?;
        Ok(VerifiedKeyInfo {
            info: self.clone(),
            recipient,
        })
    }

    /// The file's text (TOML).
    pub fn to_text(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a key information file's text.
    pub fn parse(text: &str) -> Result<KeyInfo, SealError> {
        toml::from_str(text).map_err(|e| SealError::KeyInfoMalformed(e.message().to_string()))
    }
}

fn prefix(hex: &str) -> String {
    hex.chars().take(16).collect()
}

fn check_date(s: &str) -> Result<(), SealError> {
    let b = s.as_bytes();
    let ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    ok.then_some(()).ok_or_else(|| SealError::BadDate(s.into()))
}

fn parse_signature(text: &str) -> Option<Signature> {
    let bytes: [u8; 64] = hex::decode(text).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&bytes))
}

/// What a sealed file says about itself, signed but not encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedHeader {
    /// The check tool's version (チェックツールのバージョン).
    pub tool_version: String,
    /// The rule pack the sheet was checked with.
    pub rule_pack_version: String,
    /// The age recipient the body is encrypted to.
    pub recipient: String,
    /// The receiving node's name from its key information.
    pub node_name: String,
    /// The last day of the key information the file was sealed with (YYYY-MM-DD); the node
    /// refuses the file after it. Empty in files made before it was recorded.
    #[serde(default)]
    pub key_info_expires: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFile {
    format: String,
    header: String,
    body: String,
    signer: String,
    signature: String,
}

impl SealedFile {
    fn signed_text(&self) -> String {
        format!("{}\n{}\n{}", self.format, self.header, self.body)
    }
}

/// A sealed file opened: its verified signer, versions and the sheet's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub header: SealedHeader,
    /// The hospital user's public key that signed the file.
    pub signer: [u8; 32],
    /// The sheet's XML exactly as sealed.
    pub xml: Vec<u8>,
}

/// Seals one sheet's XML for the node `to` names, signed by `by`. Returns the file's bytes.
pub fn seal(
    xml: &[u8],
    to: &VerifiedKeyInfo,
    by: &UserKey,
    tool_version: &str,
    rule_pack_version: &str,
) -> Result<Vec<u8>, SealError> {
    let header = SealedHeader {
        tool_version: tool_version.into(),
        rule_pack_version: rule_pack_version.into(),
        recipient: to.info.recipient.clone(),
        node_name: to.info.node_name.clone(),
        key_info_expires: to.info.expires.clone(),
    };
    let body = age::encrypt(&to.recipient, xml).map_err(|e| SealError::Encrypt(e.to_string()))?;
    let mut file = SealedFile {
        format: SEALED_FORMAT.into(),
        header: serde_json::to_string(&header).map_err(|e| SealError::Encrypt(e.to_string()))?,
        body: BASE64.encode(body),
        signer: hex::encode(by.public_key()),
        signature: String::new(),
    };
    file.signature = hex::encode(by.key.sign(file.signed_text().as_bytes()).to_bytes());
    serde_json::to_vec(&file).map_err(|e| SealError::Encrypt(e.to_string()))
}

fn parse_file(bytes: &[u8]) -> Result<SealedFile, SealError> {
    if bytes.len() > MAX_SEALED_BYTES {
        return Err(SealError::Malformed(format!(
            "上限 {MAX_SEALED_BYTES} バイトを超えています"
        )));
    }
    let file: SealedFile =
        serde_json::from_slice(bytes).map_err(|e| SealError::Malformed(json_problem(&e)))?;
    if file.format != SEALED_FORMAT {
        return Err(SealError::Format(file.format));
    }
    Ok(file)
}

/// The signed header of a sealed file, for showing its versions; nothing is verified, so use
/// it only to explain a refusal, never to accept a file.
pub fn peek(bytes: &[u8]) -> Result<SealedHeader, SealError> {
    let file = parse_file(bytes)?;
    serde_json::from_str(&file.header).map_err(|e| SealError::Malformed(json_problem(&e)))
}

/// Opens a sealed file: the signer must be one of `known_signers` (registered users' public
/// keys) and its signature must verify; the file must be for this node's `key`; then the body
/// is decrypted. Refusals: [`SealError::UnknownSigner`], [`SealError::Tampered`],
/// [`SealError::OtherNode`], [`SealError::Malformed`], [`SealError::Format`].
/// Whether `bytes` are a sealed file signed by `signer` and unchanged since (the signature over
/// the format, header and body verifies), without decrypting it: what the check tool asks of a
/// file it finds where it would write one. Returns its header.
pub fn signed_by(bytes: &[u8], signer: &[u8; 32]) -> Result<SealedHeader, SealError> {
    let file = parse_file(bytes)?;
    if file.signer != hex::encode(signer) {
        return Err(SealError::Tampered);
    }
    let public = VerifyingKey::from_bytes(signer).map_err(|_| SealError::Tampered)?;
    let signature = parse_signature(&file.signature).ok_or(SealError::Tampered)?;
    public
        .verify(file.signed_text().as_bytes(), &signature)
        .map_err(|_| SealError::Tampered)?;
    serde_json::from_str(&file.header).map_err(|_| SealError::Tampered)
}

/// What is wrong with a file that is not a sealed file's JSON, in Japanese, with the place.
fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "途中で終わっています",
        Category::Syntax => "JSON の形式ではありません",
        Category::Data => "項目が足りないか、余分な項目があります",
        Category::Io => "読み込めません",
    };
    format!("{what}: {}行{}列", e.line(), e.column())
}

pub fn open(bytes: &[u8], key: &SealKey, known_signers: &[[u8; 32]]) -> Result<Opened, SealError> {
    let file = parse_file(bytes)?;
    // Sealed for another node: said first, so that the clerk is pointed at the right node
    // rather than at a key that is not registered here. (Refusing on the unverified header
    // accepts nothing.)
    if let Ok(header) = serde_json::from_str::<SealedHeader>(&file.header)
        && header.recipient != key.recipient()
    {
        return Err(SealError::OtherNode {
            node: header.node_name,
        });
    }
    let signer: [u8; 32] = hex::decode(&file.signer)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SealError::Malformed("署名者の鍵が読めません".into()))?;
    if !known_signers.contains(&signer) {
        return Err(SealError::UnknownSigner {
            key: prefix(&file.signer),
        });
    }
    let public = VerifyingKey::from_bytes(&signer).map_err(|_| SealError::Tampered)?;
    let signature = parse_signature(&file.signature).ok_or(SealError::Tampered)?;
    public
        .verify(file.signed_text().as_bytes(), &signature)
        .map_err(|_| SealError::Tampered)?;
    let header: SealedHeader =
        serde_json::from_str(&file.header).map_err(|_| SealError::Tampered)?;
    if header.recipient != key.recipient() {
        return Err(SealError::OtherNode {
            node: header.node_name,
        });
    }
    let body = BASE64.decode(&file.body).map_err(|_| SealError::Tampered)?;
    let xml = age::decrypt(&key.identity, &body).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => SealError::OtherNode {
            node: header.node_name.clone(),
        },
        _ => SealError::Tampered,
    })?;
    Ok(Opened {
        header,
        signer,
        xml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        hub: NodeIdentity,
        node: NodeIdentity,
        seal_key: SealKey,
        user: UserKey,
        info: KeyInfo,
    }

    fn world() -> World {
        let hub = NodeIdentity::generate().unwrap();
        let node = NodeIdentity::generate().unwrap();
        let seal_key = SealKey::generate();
        let user = UserKey::generate().unwrap();
        let info = KeyInfo::request(&node, "見本県ノード", &seal_key, "2027-03-31")
            .unwrap()
            .sign(&hub);
        World {
            hub,
            node,
            seal_key,
            user,
            info,
        }
    }

    fn hub_key(w: &World) -> [u8; 32] {
        w.hub.public_key().to_bytes()
    }

    const XML: &[u8] =
        "<Sheets layout=\"1\"><Sheet form=\"rinko-002\" formVersion=\"2023.04\"/></Sheets>"
            .as_bytes();

    #[test]
    fn key_information_verifies_through_its_file_and_expires() {
        let w = world();
        let text = w.info.to_text();
        let info = KeyInfo::parse(&text).unwrap();
        let v = info.verify(&hub_key(&w), "2027-03-31").unwrap();
        assert_eq!(v.info().node_name, "見本県ノード");
        assert_eq!(
            v.info().node_key,
            hex::encode(w.node.public_key().as_bytes())
        );
        let e = info.verify(&hub_key(&w), "2027-04-01").unwrap_err();
        assert!(matches!(e, SealError::KeyInfoExpired { .. }));
        assert!(
            e.to_string()
                .contains("有効期限（2027-03-31）が切れています"),
            "{e}"
        );
        assert!(matches!(
            info.verify(&hub_key(&w), "2027/04/01"),
            Err(SealError::BadDate(_))
        ));
    }

    #[test]
    fn key_information_with_a_bad_signature_or_another_hub_is_refused() {
        let w = world();
        let mut moved = w.info.clone();
        moved.expires = "2099-12-31".into();
        let e = moved.verify(&hub_key(&w), "2027-01-01").unwrap_err();
        assert!(matches!(e, SealError::KeyInfoSignature), "{e}");
        let mut swapped = w.info.clone();
        swapped.recipient = SealKey::generate().recipient();
        assert!(matches!(
            swapped.verify(&hub_key(&w), "2027-01-01"),
            Err(SealError::KeyInfoSignature)
        ));
        let other_hub = NodeIdentity::generate().unwrap();
        let forged = KeyInfo::request(&w.node, "見本県ノード", &w.seal_key, "2027-03-31")
            .unwrap()
            .sign(&other_hub);
        let e = forged.verify(&hub_key(&w), "2027-01-01").unwrap_err();
        assert!(matches!(e, SealError::KeyInfoUntrustedHub { .. }), "{e}");
        let unsigned =
            KeyInfo::request(&w.node, "見本県ノード", &w.seal_key, "2027-03-31").unwrap();
        assert!(unsigned.verify(&hub_key(&w), "2027-01-01").is_err());
        assert!(matches!(
            KeyInfo::parse("format = 1"),
            Err(SealError::KeyInfoMalformed(_))
        ));
    }

    #[test]
    fn the_hub_signs_key_information_for_enrolled_nodes_only() {
        use crate::enrollment;
        let hub = tempfile::tempdir().unwrap();
        let node = tempfile::tempdir().unwrap();
        let hub_key = enrollment::init_hub(hub.path(), "127.0.0.1:7443".parse().unwrap())
            .unwrap()
            .to_bytes();
        let id = enrollment::identity(node.path()).unwrap();
        let seal_key = SealKey::load_or_create(&node.path().join("seal.key")).unwrap();
        let request = KeyInfo::request(&id, "見本県ノード", &seal_key, "2027-03-31").unwrap();
        let e = request.clone().sign_on_hub(hub.path()).unwrap_err();
        assert!(matches!(e, SealError::KeyInfoNotEnrolled(_)), "{e}");
        let key = hex::encode(id.public_key().as_bytes());
        enrollment::issue(hub.path(), &key, "hospital", "1399000010", "見本", None).unwrap();
        let signed = request.clone().sign_on_hub(hub.path()).unwrap();
        assert!(signed.verify(&hub_key, "2027-01-01").is_ok());
        enrollment::revoke(hub.path(), &key).unwrap();
        assert!(matches!(
            request.sign_on_hub(hub.path()),
            Err(SealError::KeyInfoNotEnrolled(_))
        ));
        // The hub's own key information (for its clinics' 一括登録) is the hub's to sign.
        let hub_id = enrollment::identity(hub.path()).unwrap();
        let own = KeyInfo::request(&hub_id, "ハブ", &seal_key, "2027-03-31").unwrap();
        let signed = own.sign_on_hub(hub.path()).unwrap();
        assert!(signed.verify(&hub_key, "2027-01-01").is_ok());
    }

    /// A file signed by the key asked about and unchanged passes; a changed body or another
    /// signer does not.
    #[test]
    fn signed_by_tells_an_unchanged_file_of_its_signer() {
        let w = world();
        let v = w.info.verify(&hub_key(&w), "2026-12-01").unwrap();
        let by = UserKey::generate().unwrap();
        let bytes = seal(b"<Sheets/>", &v, &by, "1.0.0", "2026.04-1").unwrap();
        assert!(signed_by(&bytes, &by.public_key()).is_ok());
        let other = UserKey::generate().unwrap();
        assert!(signed_by(&bytes, &other.public_key()).is_err());
        let mut file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let body = file["body"].as_str().unwrap().to_string();
        let flipped = if body.starts_with('A') { "B" } else { "A" };
        file["body"] = format!("{flipped}{}", &body[1..]).into();
        let changed = serde_json::to_vec(&file).unwrap();
        assert!(signed_by(&changed, &by.public_key()).is_err());
    }

    #[test]
    fn a_sealed_sheet_opens_on_its_node_with_its_versions() {
        let w = world();
        let v = w.info.verify(&hub_key(&w), "2026-12-01").unwrap();
        let file = seal(XML, &v, &w.user, "1.0.0", "2026.04-1").unwrap();
        assert!(
            !file.windows(9).any(|x| x == b"rinko-002"),
            "the sheet is not readable in the file"
        );
        let header = peek(&file).unwrap();
        assert_eq!(header.tool_version, "1.0.0");
        assert_eq!(header.rule_pack_version, "2026.04-1");
        let opened = open(&file, &w.seal_key, &[w.user.public_key()]).unwrap();
        assert_eq!(opened.xml, XML);
        assert_eq!(opened.signer, w.user.public_key());
        assert_eq!(opened.header, header);
    }

    #[test]
    fn an_unknown_signer_is_refused() {
        let w = world();
        let v = w.info.verify(&hub_key(&w), "2026-12-01").unwrap();
        let stranger = UserKey::generate().unwrap();
        let file = seal(XML, &v, &stranger, "1.0.0", "r1").unwrap();
        let e = open(&file, &w.seal_key, &[w.user.public_key()]).unwrap_err();
        assert!(matches!(e, SealError::UnknownSigner { .. }), "{e}");
        assert!(e.to_string().contains("登録されていません"), "{e}");
    }

    #[test]
    fn a_file_for_another_node_is_refused() {
        let w = world();
        let other = world();
        let v = other.info.verify(&hub_key(&other), "2026-12-01").unwrap();
        let file = seal(XML, &v, &w.user, "1.0.0", "r1").unwrap();
        let e = open(&file, &w.seal_key, &[w.user.public_key()]).unwrap_err();
        assert!(matches!(e, SealError::OtherNode { .. }), "{e}");
        assert!(
            e.to_string().contains(
                "別のノード宛てに暗号化されています（ファイルに書かれた宛先: 見本県ノード）"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_tampered_file_is_refused() {
        let w = world();
        let v = w.info.verify(&hub_key(&w), "2026-12-01").unwrap();
        let file = seal(XML, &v, &w.user, "1.0.0", "r1").unwrap();
        let known = [w.user.public_key()];
        let mut parsed: SealedFile = serde_json::from_slice(&file).unwrap();
        // An older rule pack claimed newer; a flipped byte of the ciphertext.
        let mut newer = serde_json::from_slice::<SealedFile>(&file).unwrap();
        newer.header = newer.header.replace("\"r1\"", "\"r9\"");
        let mut body = BASE64.decode(&parsed.body).unwrap();
        let last = body.len() - 1;
        body[last] ^= 1;
        parsed.body = BASE64.encode(body);
        for f in [parsed, newer] {
            let bytes = serde_json::to_vec(&f).unwrap();
            let e = open(&bytes, &w.seal_key, &known).unwrap_err();
            assert!(matches!(e, SealError::Tampered), "{e}");
            assert!(e.to_string().contains("変更されたか、壊れています"), "{e}");
        }
        assert!(matches!(
            open(b"not json", &w.seal_key, &known),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn keys_live_in_owner_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let seal_path = dir.path().join("seal.key");
        let a = SealKey::load_or_create(&seal_path).unwrap();
        let b = SealKey::load_or_create(&seal_path).unwrap();
        assert_eq!(a.recipient(), b.recipient());
        assert!(a.recipient().starts_with("age1"));
        let user_path = dir.path().join("user.key");
        let u = UserKey::create(&user_path).unwrap();
        assert!(UserKey::create(&user_path).is_err(), "no overwrite");
        assert_eq!(
            UserKey::load(&user_path).unwrap().public_key(),
            u.public_key()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [&seal_path, &user_path] {
                let mode = std::fs::metadata(p).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
    }
}
