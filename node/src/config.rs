//! A node's configuration: its role, where it listens, where its data and keys are.
//!
//! Read from a TOML file by `nsdb serve --config FILE`, or built in code by the demo and tests.
//! Every mistake in the file is reported with the file name and the key concerned.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::KeySource;

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Hospital,
    Municipality,
    Hub,
}

impl NodeRole {
    pub fn label(self) -> &'static str {
        match self {
            NodeRole::Hospital => "医療機関",
            NodeRole::Municipality => "自治体",
            NodeRole::Hub => "厚生労働省（ハブ）",
        }
    }

    /// The kind of institution that runs a node of this role.
    pub fn institution_kind(self) -> &'static str {
        match self {
            NodeRole::Hospital => "hospital",
            NodeRole::Municipality => "municipality",
            NodeRole::Hub => "ministry",
        }
    }
}

/// The institution that runs the node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    /// 医療機関コード, 自治体コード or the ministry's code.
    pub code: String,
    pub name: String,
}

/// A node's whole configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub role: NodeRole,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub key: KeySource,
    pub institution: Institution,
    /// The signed rule pack to use instead of the built-in catalogue.
    pub rules: Option<RulesConfig>,
    /// Where `GET /metrics` (Prometheus) is served, apart from the UI; None: not served.
    /// Config key `metrics_listen`: an address, or `"off"`; [`DEFAULT_METRICS_LISTEN`] (loopback)
    /// when absent.
    pub metrics_listen: Option<SocketAddr>,
    /// The web listener's certificate and key (config key `tls = { cert, key }`); without it
    /// the node listens on loopback only ([`crate::ops::tls::check_listen`]).
    pub tls: Option<crate::ops::tls::TlsConfig>,
}

/// The metrics listener's address when the config does not give one: loopback only, so that
/// only the machine itself (or a tunnel the operator sets up) can scrape it.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// Where a node's rule pack is and which key must have signed it.
///
/// Without it a node uses the catalogue built into nsdb (labelled "組み込み・開発用" on screen);
/// with it, the node loads only this pack, verified against the ministry's public key, and
/// refuses to start when the pack is missing, unsigned or changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The pack file (`nsdb rules pack` makes one).
    pub pack: PathBuf,
    /// The ministry's ed25519 public key, 64 hexadecimal characters (`nsdb rules keygen` prints it).
    pub ministry_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    name: String,
    role: NodeRole,
    listen: SocketAddr,
    data_dir: PathBuf,
    /// Path of the database key file (64 hex characters, mode 600).
    key_file: Option<PathBuf>,
    /// Or: the environment variable that holds the key (for containers and tests).
    key_env: Option<String>,
    institution: Institution,
    rules: Option<RulesConfig>,
    /// `"off"`, or the address of the metrics listener.
    metrics_listen: Option<String>,
    tls: Option<crate::ops::tls::TlsConfig>,
}

impl NodeConfig {
    /// Reads a configuration file. Relative paths in it are relative to the file.
    pub fn from_file(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let file: ConfigFile =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let key = match (file.key_file, file.key_env) {
            (Some(f), None) => KeySource::File(base.join(f)),
            (None, Some(var)) => KeySource::Env(var),
            _ => anyhow::bail!(
                "config {}: give exactly one of key_file (a file with the database key, mode 600) or key_env (an environment variable holding it)",
                path.display()
            ),
        };
        let metrics_listen = match file.metrics_listen.as_deref() {
            Some("off") => None,
            Some(addr) => Some(addr.parse().map_err(|e| {
                anyhow::anyhow!(
                    "config {}: metrics_listen {addr:?} is not an address such as \"127.0.0.1:9464\" or \"off\": {e}",
                    path.display()
                )
            })?),
            None => DEFAULT_METRICS_LISTEN.parse().ok(),
        };
        Ok(NodeConfig {
            name: file.name,
            role: file.role,
            listen: file.listen,
            data_dir: base.join(file.data_dir),
            key,
            institution: file.institution,
            rules: file.rules.map(|r| RulesConfig {
                pack: base.join(r.pack),
                ministry_key: r.ministry_key,
            }),
            metrics_listen,
            tls: file.tls.map(|t| crate::ops::tls::TlsConfig {
                cert: base.join(t.cert),
                key: base.join(t.key),
            }),
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("node.db")
    }

    pub fn identity_path(&self) -> PathBuf {
        self.data_dir.join("identity.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_config_file_and_names_the_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsdb.toml");
        std::fs::write(
            &path,
            r#"
name = "hospital-1"
role = "hospital"
listen = "127.0.0.1:8080"
data_dir = "data"
key_file = "db.key"
[institution]
code = "1310000001"
name = "東京テスト病院"
"#,
        )
        .unwrap();
        let c = NodeConfig::from_file(&path).unwrap();
        assert_eq!(c.role, NodeRole::Hospital);
        assert_eq!(c.rules, None);
        assert_eq!(c.data_dir, dir.path().join("data"));
        let both = std::fs::read_to_string(&path).unwrap().replace(
            "key_file = \"db.key\"",
            "key_file = \"db.key\"\nkey_env = \"X\"",
        );
        std::fs::write(&path, both).unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("exactly one of key_file"), "{err}");
        std::fs::write(&path, "name = 1\nrole = \"clinic\"\n").unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("nsdb.toml"), "{err}");
    }
}
