//! The check tool as a vendor and an operator use it, through the `nsdb` binary: the layout's
//! schema and sample, `nsdb check` on a folder with its error list and exit status, and the keys
//! from the node's key information request through the hub's signature to sealed files.

use std::path::Path;
use std::process::{Command, Output};

const NSDB: &str = env!("CARGO_BIN_EXE_nsdb");

fn nsdb(args: &[&str]) -> Output {
    Command::new(NSDB)
        .args(args)
        .env("NSDB_PASSWORD", "a-long-password")
        .output()
        .expect("nsdb runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn node_config(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("db.key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        r#"name = "試験県ノード"
role = "hospital"
listen = "127.0.0.1:0"
data_dir = "data"
key_file = "db.key"

[institution]
code = "1399000036"
name = "試験病院"
"#,
    )
    .unwrap();
    path
}

#[test]
fn the_schema_and_sample_of_a_form_come_from_the_binary() {
    let schema = ok(&nsdb(&["xml", "schema", "rinko-002"]));
    assert!(schema.contains("<xs:schema"), "{schema}");
    let sample = ok(&nsdb(&["xml", "sample", "rinko-002"]));
    assert!(sample.contains("<Sheet form=\"rinko-002\""), "{sample}");
    let forms = ok(&nsdb(&["xml", "forms"]));
    assert!(forms.contains("rinko-002\t"), "{forms}");
    let unknown = nsdb(&["xml", "schema", "rinko-999"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nsdb xml forms"));
}

#[test]
fn a_folder_is_checked_the_errors_listed_for_excel_and_passing_sheets_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = node_config(d);
    let config = config.to_str().unwrap();

    // The hub, and the node enrolled with it.
    let hub = d.join("hub");
    let hub_out = ok(&nsdb(&[
        "provision",
        "hub-init",
        "--data",
        hub.to_str().unwrap(),
    ]));
    let hub_key = hub_out
        .lines()
        .find_map(|l| l.strip_prefix("hub public key: "))
        .unwrap()
        .trim()
        .to_string();
    let node_key = ok(&nsdb(&[
        "provision",
        "node-key",
        "--data",
        d.join("data").to_str().unwrap(),
    ]));
    ok(&nsdb(&[
        "provision",
        "issue",
        "--data",
        hub.to_str().unwrap(),
        "--node-key",
        node_key.trim(),
        "--role",
        "hospital",
        "--jurisdiction",
        "1399000036",
        "--name",
        "試験県ノード",
        "--hub-address",
        "127.0.0.1:7443",
        "--out",
        d.join("enrollment.toml").to_str().unwrap(),
    ]));

    // Key information: requested on the node, signed on the hub.
    let request = d.join("node.request");
    let keyinfo = d.join("node.keyinfo");
    ok(&nsdb(&[
        "key-info",
        "request",
        "--config",
        config,
        "--expires",
        "2099-12-31",
        "--out",
        request.to_str().unwrap(),
    ]));
    let signed = ok(&nsdb(&[
        "key-info",
        "sign",
        "--data",
        hub.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
        "--out",
        keyinfo.to_str().unwrap(),
    ]));
    assert!(signed.contains(&hub_key), "{signed}");

    // A doctor with a check-tool key registered on the node (set up first by nsdb init).
    ok(&nsdb(&["init", "--config", config]));
    ok(&nsdb(&[
        "user",
        "add",
        "--config",
        config,
        "--login",
        "suzuki",
        "--name",
        "鈴木 一郎",
        "--kind",
        "nanbyo_doctor",
    ]));
    let user_key = d.join("suzuki.key");
    ok(&nsdb(&[
        "user",
        "key",
        "--config",
        config,
        "--login",
        "suzuki",
        "--out",
        user_key.to_str().unwrap(),
    ]));

    // A folder with a passing file and a file missing the patient's name.
    let exports = d.join("exports");
    std::fs::create_dir_all(exports.join("march")).unwrap();
    let sample = ok(&nsdb(&["xml", "sample", "rinko-002"]));
    std::fs::write(exports.join("20230101.xml"), &sample).unwrap();
    let partial: String = sample
        .lines()
        .filter(|l| !l.contains("<name>見本 太郎</name>"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(partial.len(), sample.len(), "the sample names its patient");
    std::fs::write(exports.join("march").join("partial.xml"), partial).unwrap();

    let (csv, json, sealed) = (
        d.join("errors.csv"),
        d.join("errors.json"),
        d.join("sealed"),
    );
    let out = nsdb(&[
        "check",
        exports.to_str().unwrap(),
        "--quiet",
        "--today",
        "2026-04-01",
        "--csv",
        csv.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--key-info",
        keyinfo.to_str().unwrap(),
        "--hub-key",
        &hub_key,
        "--user-key",
        user_key.to_str().unwrap(),
        "--out",
        sealed.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors give status 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv.starts_with("\u{feff}ファイル,様式番号,参照番号,患者氏名,項目ID,項目名,メッセージ\r\n"),
        "{csv}"
    );
    let partial_line = csv
        .lines()
        .find(|l| l.contains("partial.xml"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(partial_line.contains("patient.name"), "{partial_line}");
    assert!(
        !csv.contains("20230101.xml"),
        "the passing file has no error: {csv}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["files"], 2);
    assert_eq!(summary["passed"], 1);
    assert_eq!(summary["sealed"], 1);
    let files: Vec<String> = std::fs::read_dir(&sealed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["20230101_1.sealed".to_string()]);

    // Only the passing file: status 0.
    let out = nsdb(&[
        "check",
        exports.join("20230101.xml").to_str().unwrap(),
        "--quiet",
        "--today",
        "2026-04-01",
        "--csv",
        d.join("ok.csv").to_str().unwrap(),
        "--json",
        d.join("ok.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));

    // Key information from another hub than the one trusted: status 2, with the reason.
    let out = nsdb(&[
        "check",
        exports.to_str().unwrap(),
        "--quiet",
        "--csv",
        d.join("x.csv").to_str().unwrap(),
        "--json",
        d.join("x.json").to_str().unwrap(),
        "--key-info",
        keyinfo.to_str().unwrap(),
        "--hub-key",
        &"0".repeat(64),
        "--user-key",
        user_key.to_str().unwrap(),
        "--out",
        sealed.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ハブの鍵"));
}
