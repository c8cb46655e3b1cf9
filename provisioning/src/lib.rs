//! Provisioning: the secrets a node is born with, and the ministry's key that signs rule packs.
//! A node's identity is an ed25519 key pair; its database key is 32 random bytes; the rule-pack
//! key is an ed25519 key pair whose public half nodes are configured with. All live in files
//! readable by their owner only.
//!
//! `enrollment` keeps the hub's registry of enrolled node keys and the signed enrollments that
//! tell a node how to reach the hub and which key to trust.
//!
//! `sealed` holds the check tool's files for bulk registration: key information a node issues
//! and the hub signs, and sheets encrypted to a node (age, X25519) and signed by a hospital user.
//!
//! `terminal` makes the terminal certificates a node can require of the browsers that reach it:
//! the node's terminal CA, the certificates it signs, their CRL and the PKCS#12 files imported.
//!
//! This crate creates, stores and loads those secrets and files and nothing else: it never
//! opens a database or a network connection, and never prints a secret.

pub mod enrollment;
pub mod sealed;
pub mod terminal;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// What went wrong with a secret file, said so that an operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("{} を読めません: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} に書き込めません: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} は鍵のファイルではありません（16進数64文字のはずです）", path.display())]
    Malformed { path: PathBuf },
    #[error(
        "{} を所有者以外も読めます（モード {mode:o}）。所有者だけが読めるようにしてください: chmod 600 {}",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("システムの乱数生成に失敗しました: {0}")]
    Random(String),
}

/// 32 bytes from the operating system's random number generator.
pub fn random_bytes() -> Result<[u8; 32], ProvisioningError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| ProvisioningError::Random(e.to_string()))?;
    Ok(b)
}

/// Creates `dir` (and any missing parents) readable and enterable by its owner only (mode 700
/// on Unix); a directory that exists already is left as it is. Data directories and the
/// directories of secret files are made with it, so a new node never starts with a directory
/// others can read (which `nsdb doctor` would then ask to fix).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes a new secret file readable and writable by its owner only; refuses to overwrite.
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), ProvisioningError> {
    let err = |source| ProvisioningError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(err)?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Creates a database key file (64 hexadecimal characters, mode 600) unless one exists.
pub fn create_db_key_file(path: &Path) -> Result<(), ProvisioningError> {
    if path.exists() {
        return Ok(());
    }
    write_secret_file(path, &hex::encode(random_bytes()?))
}

fn read_secret_file(path: &Path) -> Result<String, ProvisioningError> {
    let text = fs::read_to_string(path).map_err(|source| ProvisioningError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(mode) = open_to_others(path) {
        return Err(ProvisioningError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(text)
}

/// The permission bits (`0o644`) of a secret file that users other than its owner may read or
/// write; None when only its owner may, when it cannot be looked at, or off Unix.
pub fn open_to_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A node's identity: its ed25519 signing key.
pub struct NodeIdentity {
    key: SigningKey,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("public", &hex::encode(self.public_key().as_bytes()))
            .finish()
    }
}

impl NodeIdentity {
    pub fn generate() -> Result<NodeIdentity, ProvisioningError> {
        Ok(NodeIdentity {
            key: SigningKey::from_bytes(&random_bytes()?),
        })
    }

    /// Loads the identity at `path`, creating it (mode 600) if there is none yet.
    pub fn load_or_create(path: &Path) -> Result<NodeIdentity, ProvisioningError> {
        if !path.exists() {
            let id = NodeIdentity::generate()?;
            write_secret_file(path, &hex::encode(id.key.to_bytes()))?;
            return Ok(id);
        }
        NodeIdentity::load(path)
    }

    pub fn load(path: &Path) -> Result<NodeIdentity, ProvisioningError> {
        Ok(NodeIdentity {
            key: load_signing_key(path)?,
        })
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The 16-byte node id: the first half of SHA-256 over the public key. It names the node in
    /// every change it makes to a sheet.
    pub fn node_id(&self) -> [u8; 16] {
        let digest = Sha256::digest(self.public_key().as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        id
    }
}

/// An ed25519 signing key kept as 64 hexadecimal characters in an owner-only file.
fn load_signing_key(path: &Path) -> Result<SigningKey, ProvisioningError> {
    let text = read_secret_file(path)?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ProvisioningError::Malformed {
            path: path.to_path_buf(),
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// The ministry's rule-pack signing key. Only the ministry holds the file; nodes and the check
/// tool hold its public key and verify packs with it.
pub struct RulePackKey {
    key: SigningKey,
}

impl std::fmt::Debug for RulePackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulePackKey")
            .field("public", &hex::encode(self.public_key()))
            .finish()
    }
}

impl RulePackKey {
    /// Creates a new key file (mode 600); refuses to overwrite an existing one.
    pub fn create(path: &Path) -> Result<RulePackKey, ProvisioningError> {
        let key = SigningKey::from_bytes(&random_bytes()?);
        write_secret_file(path, &hex::encode(key.to_bytes()))?;
        Ok(RulePackKey { key })
    }

    pub fn load(path: &Path) -> Result<RulePackKey, ProvisioningError> {
        Ok(RulePackKey {
            key: load_signing_key(path)?,
        })
    }

    /// The public key, as nodes are configured with it.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs a rule pack's payload.
    pub fn sign(&self, payload: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(payload).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_pack_key_signs_and_is_never_overwritten() {
        use ed25519_dalek::Verifier;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ministry.key");
        let k = RulePackKey::create(&path).unwrap();
        assert!(RulePackKey::create(&path).is_err(), "no overwrite");
        let again = RulePackKey::load(&path).unwrap();
        assert_eq!(k.public_key(), again.public_key());
        let sig = ed25519_dalek::Signature::from_bytes(&k.sign(b"pack"));
        let public = VerifyingKey::from_bytes(&k.public_key()).unwrap();
        assert!(public.verify(b"pack", &sig).is_ok());
    }

    #[test]
    fn an_identity_is_created_once_and_loaded_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.key");
        let a = NodeIdentity::load_or_create(&path).unwrap();
        let b = NodeIdentity::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.node_id(), b.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn different_nodes_have_different_ids() {
        let a = NodeIdentity::generate().unwrap();
        let b = NodeIdentity::generate().unwrap();
        assert_ne!(a.node_id(), b.node_id());
    }

    #[cfg(unix)]
    #[test]
    fn a_readable_identity_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeIdentity::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = NodeIdentity::load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_db_key_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        create_db_key_file(&path).unwrap();
        let first = fs::read_to_string(&path).unwrap();
        assert_eq!(first.len(), 64);
        create_db_key_file(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), first);
    }
}
