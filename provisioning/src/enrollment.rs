//! Enrollment of nodes with the hub: the hub's sync settings, its registry of enrolled node
//! keys (with each node's role and jurisdiction, and whether it was revoked), the signed
//! enrollment the hub issues for a node, and the node's acceptance of it.
//!
//! Files: on the hub, `sync-hub.toml` (where it listens) and `enrolled.toml` (the registry);
//! on a node, `enrollment.toml` (the hub's address and key, signed by the hub). This module
//! must never write a secret key into any of them, and never accept an enrollment whose
//! signature does not verify or that names another node's key.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{NodeIdentity, ProvisioningError};

/// The hub's sync settings in its data directory.
pub const HUB_SETTINGS_FILE: &str = "sync-hub.toml";
/// The hub's registry of enrolled nodes in its data directory.
pub const REGISTRY_FILE: &str = "enrolled.toml";
/// A node's accepted enrollment in its data directory.
pub const ENROLLMENT_FILE: &str = "enrollment.toml";
/// The identity file in a data directory (the same one the node uses).
pub const IDENTITY_FILE: &str = "identity.key";

/// What went wrong with enrollment, said so that an operator can act on it.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error(transparent)]
    Secret(#[from] ProvisioningError),
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error(
        "`{text}` is not a node public key: give the 64 hexadecimal characters `nsdb provision node-key` printed"
    )]
    BadKey { text: String },
    #[error("role `{0}` cannot be enrolled: use hospital or municipality")]
    BadRole(String),
    #[error(
        "the enrollment's signature does not verify: the file was altered or was not issued by the hub it names; ask the hub's operator for a new one"
    )]
    BadSignature,
    #[error(
        "this enrollment is for node key {enrolled}, but this node's key is {ours}; issue the enrollment for this node's key"
    )]
    OtherNode { enrolled: String, ours: String },
    #[error("{} was not set up as a hub: run `nsdb provision hub-init` first", dir.display())]
    NotAHub { dir: PathBuf },
    #[error("no node with key {0} is enrolled")]
    NotEnrolled(String),
    /// The key was revoked: issuing does not quietly enrol it again (a revoked key may be in
    /// someone else's hands); [`reinstate`] does, deliberately.
    #[error(
        "node key {key} ({name}) was revoked, so it is not enrolled again by issuing: if the revocation was a mistake and the key never left that node, add --reinstate; otherwise that node needs a new identity"
    )]
    Revoked { key: String, name: String },
    /// The address a node would dial is unspecified (0.0.0.0 or ::): a listening address, not
    /// one a node can reach.
    #[error(
        "{0} is where the hub listens, not an address a node can reach: give --hub-address with the hub's address as the node sees it (e.g. 192.0.2.10:7443 or hub.example.jp's address)"
    )]
    UnreachableHub(SocketAddr),
}

/// The hub's sync settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSettings {
    /// UDP address the hub's sync endpoint listens on.
    pub listen: SocketAddr,
}

/// One enrolled node in the hub's registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolledNode {
    pub name: String,
    /// The node's ed25519 public key, 64 hexadecimal characters.
    pub public_key: String,
    /// `hospital` or `municipality`.
    pub role: String,
    /// 医療機関コード of a hospital, 自治体コード of a municipality.
    pub jurisdiction: String,
    #[serde(default)]
    pub revoked: bool,
}

impl EnrolledNode {
    /// The node's public key bytes.
    pub fn key(&self) -> Option<[u8; 32]> {
        parse_key(&self.public_key).ok()
    }
}

/// The hub's registry of enrolled nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default, rename = "node")]
    pub nodes: Vec<EnrolledNode>,
}

/// What the hub issues for a node: how to reach the hub and what the node is enrolled as,
/// signed with the hub's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub hub_address: SocketAddr,
    pub hub_key: String,
    pub node_key: String,
    pub role: String,
    pub jurisdiction: String,
    pub name: String,
    /// ed25519 signature by the hub over [`Enrollment::signed_text`], hexadecimal.
    pub signature: String,
}

impl Enrollment {
    fn signed_text(&self) -> String {
        format!(
            "nsdb-enrollment/1\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.hub_address, self.hub_key, self.node_key, self.role, self.jurisdiction, self.name
        )
    }

    /// The hub's public key bytes.
    pub fn hub_key_bytes(&self) -> Result<[u8; 32], EnrollmentError> {
        parse_key(&self.hub_key)
    }
}

fn parse_key(text: &str) -> Result<[u8; 32], EnrollmentError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EnrollmentError::BadKey {
            text: text.to_owned(),
        })
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EnrollmentError> {
    let text = fs::read_to_string(path).map_err(|e| EnrollmentError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| EnrollmentError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<(), EnrollmentError> {
    let err = |reason: String| EnrollmentError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let text = toml::to_string_pretty(value).map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent() {
        crate::create_private_dir(dir).map_err(|e| err(e.to_string()))?;
    }
    // Write beside and rename, so a reader never sees half a file.
    let partial = path.with_extension("toml.partial");
    fs::write(&partial, text).map_err(|e| err(e.to_string()))?;
    fs::rename(&partial, path).map_err(|e| err(e.to_string()))
}

/// The identity of the node (or hub) whose data directory is `dir`, created if missing.
pub fn identity(dir: &Path) -> Result<NodeIdentity, EnrollmentError> {
    Ok(NodeIdentity::load_or_create(&dir.join(IDENTITY_FILE))?)
}

/// Sets up `dir` as the hub's data directory: its identity and where sync listens. Returns the
/// hub's public key.
pub fn init_hub(dir: &Path, listen: SocketAddr) -> Result<VerifyingKey, EnrollmentError> {
    let id = identity(dir)?;
    write_toml(&dir.join(HUB_SETTINGS_FILE), &HubSettings { listen })?;
    let registry = dir.join(REGISTRY_FILE);
    if !registry.exists() {
        write_toml(&registry, &Registry::default())?;
    }
    Ok(id.public_key())
}

/// The hub's sync settings, if `dir` was set up as a hub.
pub fn hub_settings(dir: &Path) -> Result<Option<HubSettings>, EnrollmentError> {
    let path = dir.join(HUB_SETTINGS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_toml(&path).map(Some)
}

/// The hub's registry (empty when there is none yet).
pub fn registry(dir: &Path) -> Result<Registry, EnrollmentError> {
    let path = dir.join(REGISTRY_FILE);
    if !path.exists() {
        return Ok(Registry::default());
    }
    read_toml(&path)
}

/// Enrolls the node holding `node_key` (hex) in the hub at `dir` and returns the signed
/// enrollment for it. `hub_address` is where the node reaches the hub (default: where it
/// listens).
pub fn issue(
    dir: &Path,
    node_key: &str,
    role: &str,
    jurisdiction: &str,
    name: &str,
    hub_address: Option<SocketAddr>,
) -> Result<Enrollment, EnrollmentError> {
    let settings = hub_settings(dir)?.ok_or_else(|| EnrollmentError::NotAHub {
        dir: dir.to_path_buf(),
    })?;
    if !matches!(role, "hospital" | "municipality") {
        return Err(EnrollmentError::BadRole(role.to_owned()));
    }
    let hub_address = hub_address.unwrap_or(settings.listen);
    if hub_address.ip().is_unspecified() {
        return Err(EnrollmentError::UnreachableHub(hub_address));
    }
    let key = hex::encode(parse_key(node_key)?);
    let hub = identity(dir)?;
    let mut reg = registry(dir)?;
    if let Some(revoked) = reg.nodes.iter().find(|n| n.public_key == key && n.revoked) {
        return Err(EnrollmentError::Revoked {
            key,
            name: revoked.name.clone(),
        });
    }
    reg.nodes.retain(|n| n.public_key != key);
    reg.nodes.push(EnrolledNode {
        name: name.to_owned(),
        public_key: key.clone(),
        role: role.to_owned(),
        jurisdiction: jurisdiction.to_owned(),
        revoked: false,
    });
    write_toml(&dir.join(REGISTRY_FILE), &reg)?;
    let mut enrollment = Enrollment {
        hub_address,
        hub_key: hex::encode(hub.public_key().as_bytes()),
        node_key: key,
        role: role.to_owned(),
        jurisdiction: jurisdiction.to_owned(),
        name: name.to_owned(),
        signature: String::new(),
    };
    let signature = hub.sign(enrollment.signed_text().as_bytes());
    enrollment.signature = hex::encode(signature.to_bytes());
    Ok(enrollment)
}

/// Revokes the node holding `node_key`: the hub refuses it from its next handshake on.
pub fn revoke(dir: &Path, node_key: &str) -> Result<(), EnrollmentError> {
    set_revoked(dir, node_key, true)
}

/// Undoes [`revoke`] for the node holding `node_key`, deliberately (a revocation made by
/// mistake, the key never having left the node): [`issue`] enrols it again after this.
pub fn reinstate(dir: &Path, node_key: &str) -> Result<(), EnrollmentError> {
    set_revoked(dir, node_key, false)
}

fn set_revoked(dir: &Path, node_key: &str, revoked: bool) -> Result<(), EnrollmentError> {
    let key = hex::encode(parse_key(node_key)?);
    let mut reg = registry(dir)?;
    let node = reg
        .nodes
        .iter_mut()
        .find(|n| n.public_key == key)
        .ok_or_else(|| EnrollmentError::NotEnrolled(key.clone()))?;
    node.revoked = revoked;
    write_toml(&dir.join(REGISTRY_FILE), &reg)
}

/// Writes an enrollment to a file (to carry to the node).
pub fn write_enrollment(path: &Path, enrollment: &Enrollment) -> Result<(), EnrollmentError> {
    write_toml(path, enrollment)
}

/// Checks an enrollment's signature and that it is for the node at `dir`, then keeps it there.
pub fn accept(dir: &Path, enrollment: &Enrollment) -> Result<(), EnrollmentError> {
    let hub = VerifyingKey::from_bytes(&enrollment.hub_key_bytes()?)
        .map_err(|_| EnrollmentError::BadSignature)?;
    let signature: [u8; 64] = hex::decode(&enrollment.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(EnrollmentError::BadSignature)?;
    hub.verify(
        enrollment.signed_text().as_bytes(),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| EnrollmentError::BadSignature)?;
    if enrollment.hub_address.ip().is_unspecified() {
        return Err(EnrollmentError::UnreachableHub(enrollment.hub_address));
    }
    let ours = hex::encode(identity(dir)?.public_key().as_bytes());
    if ours != enrollment.node_key {
        return Err(EnrollmentError::OtherNode {
            enrolled: enrollment.node_key.clone(),
            ours,
        });
    }
    write_toml(&dir.join(ENROLLMENT_FILE), enrollment)
}

/// Reads an enrollment file.
pub fn read_enrollment(path: &Path) -> Result<Enrollment, EnrollmentError> {
    read_toml(path)
}

/// The enrollment the node at `dir` accepted, if any.
pub fn accepted(dir: &Path) -> Result<Option<Enrollment>, EnrollmentError> {
    let path = dir.join(ENROLLMENT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_toml(&path).map(Some)
}

impl NodeIdentity {
    /// Signs `message` with the node's key.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.key.sign(message)
    }

    /// The 32-byte secret seed, for building the node's TLS certificate in memory. Never write
    /// it anywhere.
    pub fn secret_seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enrollment_never_names_an_address_no_node_can_reach() {
        let hub = tempfile::tempdir().unwrap();
        let node = tempfile::tempdir().unwrap();
        init_hub(hub.path(), "0.0.0.0:7443".parse().unwrap()).unwrap();
        let key = hex::encode(identity(node.path()).unwrap().public_key().as_bytes());
        let refused = issue(hub.path(), &key, "hospital", "1399000010", "病院", None).unwrap_err();
        assert!(matches!(refused, EnrollmentError::UnreachableHub(_)));
        assert!(refused.to_string().contains("--hub-address"), "{refused}");
        let at = "192.0.2.10:7443".parse().unwrap();
        let e = issue(hub.path(), &key, "hospital", "1399000010", "病院", Some(at)).unwrap();
        assert_eq!(e.hub_address, at);
        accept(node.path(), &e).unwrap();
    }

    #[test]
    fn a_hub_enrolls_a_node_which_accepts_and_a_revocation_sticks() {
        let hub = tempfile::tempdir().unwrap();
        let node = tempfile::tempdir().unwrap();
        init_hub(hub.path(), "127.0.0.1:7443".parse().unwrap()).unwrap();
        let key = hex::encode(identity(node.path()).unwrap().public_key().as_bytes());
        let e = issue(hub.path(), &key, "hospital", "1399000010", "病院", None).unwrap();
        accept(node.path(), &e).unwrap();
        assert_eq!(accepted(node.path()).unwrap(), Some(e.clone()));
        assert_eq!(registry(hub.path()).unwrap().nodes.len(), 1);

        let mut tampered = e.clone();
        tampered.jurisdiction = "1300000000".into();
        assert!(matches!(
            accept(node.path(), &tampered),
            Err(EnrollmentError::BadSignature)
        ));
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            accept(other.path(), &e),
            Err(EnrollmentError::OtherNode { .. })
        ));
        assert!(matches!(
            issue(hub.path(), &key, "hub", "x", "x", None),
            Err(EnrollmentError::BadRole(_))
        ));

        revoke(hub.path(), &key).unwrap();
        assert!(registry(hub.path()).unwrap().nodes[0].revoked);
        // Issuing again does not quietly bring a revoked key back.
        let again = issue(hub.path(), &key, "hospital", "1399000010", "病院", None).unwrap_err();
        assert!(matches!(again, EnrollmentError::Revoked { .. }), "{again}");
        assert!(again.to_string().contains("--reinstate"), "{again}");
        assert!(registry(hub.path()).unwrap().nodes[0].revoked);
        reinstate(hub.path(), &key).unwrap();
        issue(hub.path(), &key, "hospital", "1399000010", "病院", None).unwrap();
        assert!(!registry(hub.path()).unwrap().nodes[0].revoked);
    }
}
