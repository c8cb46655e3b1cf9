//! Rule packs: the form catalogue as one versioned file, signed with the ministry's ed25519 key.
//!
//! A pack is JSON: `{"format", "payload", "key", "signature"}`, where `payload` is itself a JSON
//! text (`{"version", "files": [{"name", "text"}]}`) and the signature covers exactly its bytes,
//! so no canonical form is needed. Verification is pure (bytes and a key in, a catalogue out);
//! this module never reads a file or a clock and never signs: signing belongs to provisioning,
//! which holds the private key.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Catalogue, CatalogueError};

/// The format tag every pack carries.
pub const FORMAT: &str = "nsdb-rule-pack/1";

/// Why a pack was refused, said so that an operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("ルールパックの形式ではありません（{0}）。`nsdb rules pack` で作成してください。")]
    Malformed(String),
    #[error(
        "ルールパックの形式が {0:?} です。この nsdb が読めるのは {FORMAT:?} です。対応する nsdb かルールパックを導入してください。"
    )]
    Format(String),
    #[error(
        "ルールパックに署名がありません。厚生労働省の鍵で署名してください（`nsdb rules pack --key …`）。"
    )]
    Unsigned,
    #[error(
        "ルールパックの署名の鍵 {found} が、設定された厚生労働省の鍵 {expected} と異なります。ノードの設定の `rules.ministry_key` を確認してください。"
    )]
    WrongKey { found: String, expected: String },
    #[error(
        "ルールパックの署名が内容と一致しません。署名の後に変更されたか壊れています。厚生労働省からルールパックを入手し直してください。"
    )]
    Tampered,
    #[error("ルールパックの様式を読み込めません: {0}")]
    Catalogue(#[from] CatalogueError),
}

/// Who vouches for a catalogue, and which version it is. Shown on screen and written into every
/// file made with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackInfo {
    pub version: String,
    /// Hexadecimal ed25519 public key of the signer; `None` for the catalogue built into nsdb.
    pub signer: Option<String>,
}

impl PackInfo {
    /// The catalogue compiled into this build (development and demo use; not a ministry pack).
    pub fn builtin() -> PackInfo {
        PackInfo {
            version: crate::catalogue::BUILTIN_VERSION.to_string(),
            signer: None,
        }
    }

    /// `2026.04-1 (署名 1a2b3c4d…)` or `builtin-0.1.0 (組み込み・開発用)`.
    pub fn label(&self) -> String {
        match &self.signer {
            Some(k) => format!("{} (署名 {}…)", self.version, &k[..k.len().min(16)]),
            None => format!("{} (組み込み・開発用)", self.version),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    format: String,
    payload: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    signature: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    version: String,
    files: Vec<PackedFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackedFile {
    name: String,
    text: String,
}

/// A verified pack: its version and signer, and the catalogue it holds.
#[derive(Debug, Clone)]
pub struct RulePack {
    pub info: PackInfo,
    pub catalogue: Catalogue,
}

/// The bytes to sign for a pack of `files` (file name, text) at `version`.
pub fn payload(version: &str, files: &[(&str, &str)]) -> String {
    let p = Payload {
        version: version.to_string(),
        files: files
            .iter()
            .map(|(n, t)| PackedFile {
                name: n.to_string(),
                text: t.to_string(),
            })
            .collect(),
    };
    serde_json::to_string(&p).unwrap_or_default()
}

/// A pack file from a payload, the signer's public key and the signature over the payload.
pub fn assemble(payload: &str, public_key: &[u8; 32], signature: &[u8; 64]) -> Vec<u8> {
    let f = PackFile {
        format: FORMAT.to_string(),
        payload: payload.to_string(),
        key: hex(public_key),
        signature: hex(signature),
    };
    serde_json::to_vec_pretty(&f).unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// Parses a hexadecimal ed25519 public key (64 characters), as written in a node configuration.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&unhex::<32>(text.trim())?).ok()
}

impl RulePack {
    /// Verifies a pack against the ministry's public key and loads its catalogue.
    pub fn verify(bytes: &[u8], ministry: &VerifyingKey) -> Result<RulePack, PackError> {
        let file: PackFile =
            serde_json::from_slice(bytes).map_err(|e| PackError::Malformed(e.to_string()))?;
        if file.format != FORMAT {
            return Err(PackError::Format(file.format));
        }
        if file.signature.is_empty() || file.key.is_empty() {
            return Err(PackError::Unsigned);
        }
        let expected = hex(ministry.as_bytes());
        if file.key != expected {
            return Err(PackError::WrongKey {
                found: file.key,
                expected,
            });
        }
        let sig = unhex::<64>(&file.signature).ok_or(PackError::Tampered)?;
        ministry
            .verify_strict(file.payload.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| PackError::Tampered)?;
        let payload: Payload =
            serde_json::from_str(&file.payload).map_err(|e| PackError::Malformed(e.to_string()))?;
        let texts: Vec<(&str, &str)> = payload
            .files
            .iter()
            .map(|f| (f.name.as_str(), f.text.as_str()))
            .collect();
        let info = PackInfo {
            version: payload.version,
            signer: Some(expected),
        };
        let catalogue = Catalogue::from_texts(&texts)?.with_info(info.clone());
        Ok(RulePack { info, catalogue })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(version: &str, key: &SigningKey) -> Vec<u8> {
        let p = payload(version, crate::catalogue::builtin_files());
        let sig = key.sign(p.as_bytes());
        assemble(&p, key.verifying_key().as_bytes(), &sig.to_bytes())
    }

    #[test]
    fn a_signed_pack_loads_with_its_version() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let pack = RulePack::verify(&signed("2026.04-1", &key), &key.verifying_key()).unwrap();
        assert_eq!(pack.info.version, "2026.04-1");
        assert_eq!(pack.catalogue.info().version, "2026.04-1");
        assert!(pack.catalogue.form("rinko-006").is_some());
        assert!(pack.info.label().contains("2026.04-1"));
    }

    #[test]
    fn unsigned_foreign_and_tampered_packs_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let ministry = key.verifying_key();
        let good = signed("1", &key);

        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        v["signature"] = "".into();
        let e = RulePack::verify(&serde_json::to_vec(&v).unwrap(), &ministry).unwrap_err();
        assert!(matches!(e, PackError::Unsigned), "{e}");

        let e = RulePack::verify(&signed("1", &other), &ministry).unwrap_err();
        assert!(matches!(e, PackError::WrongKey { .. }), "{e}");

        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let p = v["payload"]
            .as_str()
            .unwrap()
            .replace("パーキンソン病", "パーキンソン症");
        v["payload"] = p.into();
        let e = RulePack::verify(&serde_json::to_vec(&v).unwrap(), &ministry).unwrap_err();
        assert!(matches!(e, PackError::Tampered), "{e}");
        assert!(e.to_string().contains("署名の後に変更された"));

        let e = RulePack::verify(b"not a pack", &ministry).unwrap_err();
        assert!(matches!(e, PackError::Malformed(_)), "{e}");
    }

    #[test]
    fn public_keys_parse_from_hex() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(
            parse_public_key(&format!(" {} ", hex(key.as_bytes()))),
            Some(key)
        );
        assert_eq!(parse_public_key("zz"), None);
    }
}
