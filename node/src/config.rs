//! A node's configuration: its role, where it listens, where its data and keys are.
//!
//! Read from a TOML file by `nsdb serve --config FILE`, or built in code by the demo and tests.
//! Every mistake in the file is reported with the file name and the key concerned.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::KeySource;

/// What a node is for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
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

    /// The role as a configuration file spells it (`role = "hub"`).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Hospital => "hospital",
            NodeRole::Municipality => "municipality",
            NodeRole::Hub => "hub",
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    /// 医療機関コード (10 digits: 都道府県番号 2 + 点数表番号 1 + 医療機関コード 7; checked on a
    /// hospital node), 自治体コード or the ministry's code.
    pub code: String,
    /// The institution's name as screens and prints show it.
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
    /// The web listener's certificate and key (config key `tls = { cert, key, client_certs }`);
    /// without it the node listens on loopback only ([`crate::ops::tls::check_listen`]).
    pub tls: Option<crate::ops::tls::TlsConfig>,
    /// How often the serving node rechecks its database's integrity (config key
    /// `integrity_check_hours`, default [`DEFAULT_INTEGRITY_CHECK_HOURS`]); None: only at start.
    pub integrity_check_every: Option<std::time::Duration>,
    /// Below this many free bytes on the data directory's file system the node reports itself
    /// `degraded` (health, metrics) and `nsdb doctor` says FIX (config key `min_free_disk_mib`,
    /// default [`crate::ops::space::DEFAULT_MIN_FREE_MIB`] MiB).
    pub min_free_bytes: u64,
    /// The font prints fall back to for characters the embedded IPAex Gothic lacks (config key
    /// `print_fallback_font`).
    pub print_fallback_font: FallbackFont,
    /// The reverse proxies in front of the web listener (config key `trusted_proxies`:
    /// addresses or networks such as `10.0.0.5` or `10.0.0.0/24`). A request from one of them
    /// is counted against the client address its `X-Forwarded-For` names
    /// ([`crate::http::shared::client::address`]); from anyone else the header is ignored.
    /// Empty (the default): the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Which fallback font the prints use ([`crate::print::load_fallback_font`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackFont {
    /// IPAmj明朝 where Debian's fonts-ipamj-mincho puts it
    /// ([`crate::print::DEFAULT_FALLBACK_FONT`]), when it is there.
    Default,
    /// This file, which must be there: the node does not start without it.
    File(PathBuf),
    /// None: a character IPAex Gothic lacks is refused at entry.
    Off,
}

/// Hours between two integrity checks of a serving node when the config does not say.
pub const DEFAULT_INTEGRITY_CHECK_HOURS: u64 = 24;

/// The metrics listener's address when the config does not give one: loopback only, so that
/// only the machine itself (or a tunnel the operator sets up) can scrape it.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// Where a node's rule pack is and which key must have signed it.
///
/// Without it a node uses the catalogue built into nsdb (labelled "組み込み・開発用" on screen);
/// with it, the node loads only this pack, verified against the ministry's public key, and
/// refuses to start when the pack is missing, unsigned or changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// The pack file (`nsdb rules pack` makes one).
    pub pack: PathBuf,
    /// The ministry's ed25519 public key, 64 hexadecimal characters (`nsdb rules keygen` prints it).
    pub ministry_key: String,
}

/// The configuration file as written (TOML). Its doc comments are the configuration reference
/// in docs/operations.md ([`reference`]); paths are relative to the file.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// The node's name, as logs and the demo show it (e.g. `hospital-1`).
    name: String,
    /// What the node is for: `hospital`, `municipality` or `hub`.
    role: NodeRole,
    /// The web UI's and API's address (e.g. `127.0.0.1:8080`). Plain HTTP only on loopback;
    /// any other address needs `tls`.
    listen: SocketAddr,
    /// The node's directory: `node.db` (SQLCipher), `identity.key`, `seal.key`.
    data_dir: PathBuf,
    /// Path of the database key file (64 hexadecimal characters, mode 600). Give this or
    /// `key_env`, not both.
    key_file: Option<PathBuf>,
    /// Or: the environment variable that holds the key (for containers and tests).
    key_env: Option<String>,
    /// The institution that runs the node.
    institution: Institution,
    /// A signed rule pack to use instead of the built-in catalogue.
    rules: Option<RulesConfig>,
    /// Where Prometheus metrics are served: an address, or `"off"`. Default `127.0.0.1:9464`.
    metrics_listen: Option<String>,
    /// The web listener's certificate and key, and whether terminals must show a certificate.
    tls: Option<crate::ops::tls::TlsFile>,
    /// Hours between two integrity checks while the node serves (`cipher_integrity_check` and
    /// `quick_check`); `0` checks only at start. Default 24.
    integrity_check_hours: Option<u64>,
    /// Free space (MiB) the data directory's file system must keep: below it `/api/v1/health`
    /// answers `degraded` and `nsdb doctor` says FIX. Default 1024 (1 GiB).
    min_free_disk_mib: Option<u64>,
    /// A font file the prints use for characters the embedded IPAex Gothic lacks (外字 such as
    /// 𠮷, and variation sequences such as 葛󠄀), or `"off"`. Default: IPAmj明朝 at
    /// `/usr/share/fonts/truetype/ipamj/ipamjm.ttf` (Debian's fonts-ipamj-mincho) when it is
    /// installed. A file named here must exist.
    print_fallback_font: Option<String>,
    /// The reverse proxies (TLS terminators, load balancers) in front of the web listener,
    /// as addresses or networks (`["10.0.0.5", "10.0.1.0/24"]`). For a request from one of
    /// them, the per-address sign-in limit counts the client its `X-Forwarded-For` names (the
    /// last address in it that is not itself one of these proxies); from any other peer the
    /// header is ignored, so a client cannot choose its own address. Default: none (the TCP
    /// peer is the client).
    trusted_proxies: Option<Vec<String>>,
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
        let mut institution = file.institution;
        // A hospital is named by its 医療機関コード: a mistyped one is refused here, before it
        // names sheets, users and the enrollment.
        if file.role == NodeRole::Hospital {
            institution.code = crate::institution::InstitutionCode::parse(&institution.code)
                .map_err(|e| anyhow::anyhow!("config {}: institution.code: {e}", path.display()))?
                .to_string();
        }
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
        let trusted_proxies = file
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|p| {
                parse_proxy(p)
                    .map_err(|e| anyhow::anyhow!("config {}: trusted_proxies: {e}", path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(NodeConfig {
            name: file.name,
            role: file.role,
            listen: file.listen,
            data_dir: base.join(file.data_dir),
            key,
            institution,
            rules: file.rules.map(|r| RulesConfig {
                pack: base.join(r.pack),
                ministry_key: r.ministry_key,
            }),
            metrics_listen,
            tls: file
                .tls
                .map(|t| t.resolve(base))
                .transpose()
                .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?,
            integrity_check_every: match file
                .integrity_check_hours
                .unwrap_or(DEFAULT_INTEGRITY_CHECK_HOURS)
            {
                0 => None,
                h => Some(std::time::Duration::from_secs(h.saturating_mul(3600))),
            },
            print_fallback_font: match file.print_fallback_font.as_deref() {
                None => FallbackFont::Default,
                Some("off") => FallbackFont::Off,
                Some(p) => FallbackFont::File(base.join(p)),
            },
            min_free_bytes: file
                .min_free_disk_mib
                .unwrap_or(crate::ops::space::DEFAULT_MIN_FREE_MIB)
                .saturating_mul(1 << 20),
            trusted_proxies,
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("node.db")
    }

    pub fn identity_path(&self) -> PathBuf {
        self.data_dir.join("identity.key")
    }
}

/// One entry of `trusted_proxies`: an address (`10.0.0.5`, `::1`: that address alone) or a
/// network (`10.0.0.0/24`). Errors, with the text as given: neither; a network with host bits
/// set (`10.0.0.5/24`: the network or the one address?); a network of everyone (`/0`), which
/// would let any client choose the address the sign-in limit counts.
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    let net = text
        .parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!(
                "{text:?} is not an address or a network such as \"10.0.0.5\" or \"10.0.0.0/24\""
            )
        })?;
    if net.prefix_len() == 0 {
        return Err(format!(
            "{text:?} trusts every address: any client could then choose the address the sign-in limit counts; name the proxies' own addresses or network"
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{text:?} has host bits set: write {:?} for the network or {:?} for the one address",
            net.trunc().to_string(),
            net.addr().to_string()
        ));
    }
    Ok(net)
}

/// The configuration reference: one Markdown table row per key of the file (nested tables as
/// `institution.code`), with its type, whether it is required and its description, generated
/// from the doc comments of the file's type so that the reference cannot drift from the code.
/// `nsdb config reference` prints it; docs/operations.md holds it (a test keeps them equal).
pub fn reference() -> String {
    let schema = schemars::schema_for!(ConfigFile);
    let root = schema.as_value();
    let mut out = String::from("| key | type | required | meaning |\n| --- | --- | --- | --- |\n");
    rows(root, root, "", &mut out);
    out
}

fn rows(root: &serde_json::Value, object: &serde_json::Value, prefix: &str, out: &mut String) {
    let required: Vec<&str> = object["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(props) = object["properties"].as_object() else {
        return;
    };
    for (key, prop) in props {
        let name = format!("{prefix}{key}");
        let target = referenced(root, prop);
        let description = prop["description"]
            .as_str()
            .or_else(|| target.and_then(|t| t["description"].as_str()))
            .unwrap_or("")
            .replace('\n', " ");
        let ty = match target {
            Some(t) if t["properties"].is_object() => "table".to_string(),
            Some(t) => type_of(t),
            None => type_of(prop),
        };
        let needed = if required.contains(&key.as_str()) {
            "yes"
        } else {
            "no"
        };
        out.push_str(&format!("| `{name}` | {ty} | {needed} | {description} |\n"));
        if let Some(t) = target.filter(|t| t["properties"].is_object()) {
            rows(root, t, &format!("{name}."), out);
        }
    }
}

/// The definition a property refers to (`$ref`, directly or inside `anyOf` with null).
fn referenced<'a>(
    root: &'a serde_json::Value,
    prop: &'a serde_json::Value,
) -> Option<&'a serde_json::Value> {
    let reference = prop["$ref"].as_str().or_else(|| {
        prop["anyOf"]
            .as_array()?
            .iter()
            .find_map(|v| v["$ref"].as_str())
    })?;
    let name = reference.rsplit('/').next()?;
    root["$defs"].get(name)
}

fn type_of(v: &serde_json::Value) -> String {
    if let Some(values) = v["enum"].as_array() {
        return values
            .iter()
            .filter_map(|x| x.as_str())
            .map(|x| format!("`{x}`"))
            .collect::<Vec<_>>()
            .join(" / ");
    }
    let ty = match &v["type"] {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" / "),
        _ => String::new(),
    };
    match ty.as_str() {
        "integer" => "integer".into(),
        "" => "value".into(),
        other => other.into(),
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
        // A hospital's code of 5 digits is refused, naming the key and the rule.
        let short = std::fs::read_to_string(&path)
            .unwrap()
            .replace("key_env = \"X\"\n", "")
            .replace("1310000001", "13100");
        std::fs::write(&path, short).unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("institution.code") && err.contains("5 桁") && err.contains("10 桁"),
            "{err}"
        );
        std::fs::write(&path, "name = 1\nrole = \"clinic\"\n").unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("nsdb.toml"), "{err}");
    }

    #[test]
    fn the_reference_in_operations_md_is_the_one_the_code_generates() {
        let reference = reference();
        for key in [
            "`name`",
            "`institution.code`",
            "`tls.cert`",
            "`rules.ministry_key`",
            "`integrity_check_hours`",
            "`hospital` / `municipality` / `hub`",
        ] {
            assert!(reference.contains(key), "{key} missing from\n{reference}");
        }
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/operations.md"
        ))
        .expect("docs/operations.md");
        assert!(
            doc.contains(&reference),
            "docs/operations.md does not hold the configuration reference the code generates; replace its table with the output of `nsdb config reference`:\n{reference}"
        );
    }

    #[test]
    fn integrity_is_rechecked_daily_unless_the_config_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsdb.toml");
        let base = "name = \"h\"\nrole = \"hub\"\nlisten = \"127.0.0.1:1\"\ndata_dir = \"d\"\nkey_env = \"K\"\n";
        let inst = "[institution]\ncode = \"1\"\nname = \"n\"\n";
        std::fs::write(&path, format!("{base}{inst}")).unwrap();
        let c = NodeConfig::from_file(&path).unwrap();
        assert_eq!(
            c.integrity_check_every,
            Some(std::time::Duration::from_secs(24 * 3600))
        );
        std::fs::write(&path, format!("{base}integrity_check_hours = 0\n{inst}")).unwrap();
        assert_eq!(
            NodeConfig::from_file(&path).unwrap().integrity_check_every,
            None
        );
        std::fs::write(&path, format!("{base}integrity_check_hours = 6\n{inst}")).unwrap();
        assert_eq!(
            NodeConfig::from_file(&path).unwrap().integrity_check_every,
            Some(std::time::Duration::from_secs(6 * 3600))
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsdb.toml");
        let base = "name = \"h\"\nrole = \"hub\"\nlisten = \"127.0.0.1:1\"\ndata_dir = \"d\"\nkey_env = \"K\"\n";
        let inst = "[institution]\ncode = \"1\"\nname = \"n\"\n";
        std::fs::write(&path, format!("{base}{inst}")).unwrap();
        assert!(
            NodeConfig::from_file(&path)
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        std::fs::write(
            &path,
            format!("{base}trusted_proxies = [\"10.0.0.5\", \"10.0.1.0/24\", \"::1\"]\n{inst}"),
        )
        .unwrap();
        let proxies = NodeConfig::from_file(&path).unwrap().trusted_proxies;
        let shown: Vec<String> = proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.5/32", "10.0.1.0/24", "::1/128"]);
        std::fs::write(
            &path,
            format!("{base}trusted_proxies = [\"10.0.0.5\", \"proxy.local\"]\n{inst}"),
        )
        .unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("nsdb.toml")
                && err.contains("trusted_proxies")
                && err.contains("proxy.local"),
            "{err}"
        );
        for (entry, said) in [
            ("0.0.0.0/0", "trusts every address"),
            ("::/0", "trusts every address"),
            (
                "10.0.0.5/24",
                "\"10.0.0.0/24\" for the network or \"10.0.0.5\"",
            ),
        ] {
            std::fs::write(
                &path,
                format!("{base}trusted_proxies = [\"{entry}\"]\n{inst}"),
            )
            .unwrap();
            let err = NodeConfig::from_file(&path).unwrap_err().to_string();
            assert!(err.contains(said) && err.contains(entry), "{entry}: {err}");
        }
    }
}
