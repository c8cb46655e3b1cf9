//! The `nsdb` binary as an operator uses it: a node from a configuration file, a user added
//! from the command line (on the hub, a clinic's), and the errors for a loose key file, a wrong
//! key and a public address.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const NSDB: &str = env!("CARGO_BIN_EXE_nsdb");

/// `nsdb ARGS…` run to its end, with what it printed.
fn nsdb(args: &[&str]) -> std::process::Output {
    Command::new(NSDB).args(args).output().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "hospital-test"
role = "hospital"
listen = "127.0.0.1:{port}"
data_dir = "data"
key_file = "db.key"

[institution]
code = "1399000036"
name = "試験病院"
"#
        ),
    )
    .unwrap();
    path
}

fn write_key(dir: &Path, hex_byte: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("db.key");
    std::fs::write(&key, hex_byte.repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One HTTP/1.1 request on loopback; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// `nsdb init`, asserting it succeeds (a new node; `nsdb user add` never creates one).
fn init(config: &Path) {
    let out = Command::new(NSDB)
        .args(["init", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `nsdb user add`; the first user of a new node's config sets the node up first.
fn add_user(config: &Path, login: &str, password: &str) -> std::process::Output {
    let data = config.with_file_name("data");
    if !data.join("node.db").exists() && !data.join("node.db.owner").exists() {
        init(config);
    }
    Command::new(NSDB)
        .args(["user", "add", "--config"])
        .arg(config)
        .args([
            "--login",
            login,
            "--name",
            "運用 試験",
            "--kind",
            "nanbyo_doctor",
        ])
        .env("NSDB_PASSWORD", password)
        .output()
        .unwrap()
}

#[test]
fn an_operator_adds_a_user_and_serves_a_node_from_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    write_key(dir.path(), "ab", 0o600);

    let out = add_user(&config, "dr-ops", "short");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("10文字以上"));
    let out = add_user(&config, "dr-ops", "correct horse battery");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut server = Command::new(NSDB)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut health = None;
    for _ in 0..100 {
        health = http(port, "GET", "/api/v1/health", "");
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let login = http(
        port,
        "POST",
        "/api/v1/session",
        r#"{"login":"dr-ops","password":"correct horse battery"}"#,
    );
    let _ = server.kill();
    let _ = server.wait();
    let (status, body) = health.expect("the node answers");
    assert_eq!(status, 200);
    assert!(body.contains("\"role\":\"hospital\""), "{body}");
    let (status, body) = login.unwrap();
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("\"institution\":\"1399000036\""), "{body}");
}

#[test]
fn a_loose_key_file_and_a_wrong_key_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port());
    write_key(dir.path(), "cd", 0o600);
    init(&config);
    write_key(dir.path(), "cd", 0o644);
    let out = add_user(&config, "dr-x", "correct horse battery");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");

    write_key(dir.path(), "cd", 0o600);
    assert!(
        add_user(&config, "dr-x", "correct horse battery")
            .status
            .success()
    );
    write_key(dir.path(), "ef", 0o600);
    let out = add_user(&config, "dr-y", "correct horse battery");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the key is wrong"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Said in Japanese first, with the database's path; SQLCipher's own log stays quiet.
    assert!(
        err.contains("データベース") && err.contains("を開けません: 鍵が違うか"),
        "{err}"
    );
    assert!(
        err.contains(&dir.path().join("data").display().to_string()),
        "{err}"
    );
    assert!(
        !err.contains("sqlcipher") && !err.contains("hmac check"),
        "{err}"
    );
}

/// `nsdb user add` with `args` (after the config) and a good password.
fn user_add(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(NSDB)
        .args(["user", "add", "--config"])
        .arg(config)
        .args(args)
        .env("NSDB_PASSWORD", "correct horse battery")
        .output()
        .unwrap()
}

#[test]
fn user_add_refuses_what_the_screens_do_not_expect_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port());
    write_key(dir.path(), "ab", 0o600);
    init(&config);
    let long = "長".repeat(500);
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["--login", "u1", "--name", "", "--kind", "clerk"],
            "--name",
            "氏名が空です",
        ),
        (
            &["--login", "u2", "--name", "  ", "--kind", "clerk"],
            "--name",
            "氏名が空です",
        ),
        (
            &["--login", "u3", "--name", &long, "--kind", "clerk"],
            "--name",
            "氏名が長すぎます（500文字）。30文字以内",
        ),
        (
            &["--login", "u4", "--name", "厚労 一郎", "--kind", "ministry"],
            "--kind",
            "医療機関のノードには「厚生労働省職員」の利用者を登録できません",
        ),
        (
            &[
                "--login",
                "u5",
                "--name",
                "他院 太郎",
                "--kind",
                "nanbyo_doctor",
                "--institution",
                "1399000028",
            ],
            "--institution",
            "他の医療機関（1399000028）の利用者を登録できません",
        ),
    ];
    for (args, flag, words) in cases {
        let out = user_add(&config, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(&format!("{flag}: ")), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    let out = user_add(
        &config,
        &["--login", "u6", "--name", "x", "--kind", "doctor"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--kind: ユーザ種別「doctor」はありません"),
        "{err}"
    );

    // What a hospital holds is accepted, and said in Japanese.
    let out = user_add(
        &config,
        &[
            "--login",
            "u7",
            "--name",
            "鈴木 太郎",
            "--kind",
            "nanbyo_doctor",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("利用者 u7（id ") && said.contains("難病指定医）を登録しました"),
        "{said}"
    );
}

#[test]
fn a_node_without_tls_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:");
    std::fs::write(&config, text).unwrap();
    write_key(dir.path(), "ab", 0o600);
    let out = Command::new(NSDB)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("without TLS") && said.contains("tls = {"),
        "{said}"
    );
    assert!(
        !dir.path().join("data").join("node.db").exists(),
        "opened before refusing"
    );
}

#[test]
fn audit_verify_reports_an_intact_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port());
    write_key(dir.path(), "cd", 0o600);
    let out = add_user(&config, "suzuki.taro", "hinoki-kage 7 tsuki");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(NSDB)
        .args(["audit", "verify", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("intact: 1 entries"), "{said}");
}

#[test]
fn the_demo_refuses_a_public_address() {
    let out = nsdb(&["demo", "--bind", "0.0.0.0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn the_sync_benchmark_runs_the_hub_in_its_own_process_and_reports_every_figure() {
    let out = Command::new(NSDB)
        .args(["bench", "sync", "--sheets", "20", "--runs", "1", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: std::collections::BTreeMap<String, f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object a line");
            (
                v["metric"].as_str().expect("metric").to_string(),
                v["median"].as_f64().expect("median"),
            )
        })
        .collect();
    for metric in [
        "initial_wall",
        "initial_bytes",
        "incremental_wall",
        "incremental_bytes",
        "idle_wall",
        "idle_bytes",
        "idle_steady_wall",
        "idle_steady_bytes",
        "hospital_peak_memory",
        "hub_peak_memory",
    ] {
        assert!(
            figures.contains_key(metric),
            "{metric} missing: {figures:?}"
        );
    }
    // The hub's memory is read from its own process, and it did receive the sheets.
    assert!(figures["hub_peak_memory"] > 1.0, "{figures:?}");
    assert!(
        figures["initial_bytes"] > figures["idle_bytes"],
        "{figures:?}"
    );
    assert!(
        figures["incremental_bytes"] > figures["idle_steady_bytes"],
        "{figures:?}"
    );
}

#[test]
fn on_the_hub_an_operator_adds_a_clinics_doctor_and_clerk_but_no_other_kind() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            r#"name = "hub-test"
role = "hub"
listen = "127.0.0.1:{}"
data_dir = "data"
key_file = "db.key"

[institution]
code = "mhlw-test"
name = "厚生労働省（試験）"
"#,
            free_port()
        ),
    )
    .unwrap();
    write_key(dir.path(), "cd", 0o600);
    init(&config);
    let add = |login: &str, kind: &str, extra: &[&str]| {
        Command::new(NSDB)
            .args(["user", "add", "--config"])
            .arg(&config)
            .args(["--login", login, "--name", "診療 試験", "--kind", kind])
            .args(extra)
            .env("NSDB_PASSWORD", "correct horse battery")
            .output()
            .unwrap()
    };
    let clinic = [
        "--institution",
        "1399000044",
        "--institution-name",
        "試験診療所",
    ];
    let out = add("clinic-doctor", "nanbyo_doctor", &clinic);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add("clinic-clerk", "clerk", &clinic);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add("clinic-reviewer", "reviewer", &clinic);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("指定医と医療クラーク等だけ"), "{said}");
    // A clinic's 医療機関コード has 10 digits: a 5-digit one is refused, saying so.
    let out = add(
        "short-code",
        "clerk",
        &["--institution", "13990", "--institution-name", "試験診療所"],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--institution") && said.contains("5 桁") && said.contains("10 桁"),
        "{said}"
    );
    // A name needs the code it names.
    let out = add("no-code", "clerk", &["--institution-name", "試験診療所"]);
    assert!(!out.status.success());
}

#[test]
fn serve_never_creates_a_node_a_mistyped_data_dir_is_refused_and_init_sets_one_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    write_key(dir.path(), "ab", 0o600);
    let serve = || {
        Command::new(NSDB)
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    // The data directory does not exist (a typo): refused, naming it and how to provision.
    let out = serve();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    let data = dir.path().join("data");
    assert!(
        said.contains(&format!("{} がありません", data.display())),
        "{said}"
    );
    assert!(
        said.contains(&format!("nsdb init --config {}", config.display())),
        "{said}"
    );
    assert!(!data.exists(), "serve created the data directory");

    // It exists but holds no node.
    std::fs::create_dir(&data).unwrap();
    let out = serve();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("ノードがありません"), "{said}");
    assert!(!data.join("node.db").exists(), "serve created a database");
    // nsdb user add on it is refused the same way: it says to run nsdb init first.
    let out = Command::new(NSDB)
        .args(["user", "add", "--config"])
        .arg(&config)
        .args([
            "--login",
            "dr-first",
            "--name",
            "運用 試験",
            "--kind",
            "nanbyo_doctor",
        ])
        .env("NSDB_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("nsdb user add はノードを作りません"),
        "{said}"
    );
    assert!(
        said.contains(&format!("nsdb init --config {}", config.display())),
        "{said}"
    );
    assert!(
        !data.join("node.db").exists(),
        "user add created a database"
    );

    // nsdb init sets it up once; then the node serves.
    let out = Command::new(NSDB)
        .args(["init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("set up node"), "{said}");
    let out = Command::new(NSDB)
        .args(["init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("already holds a node"), "{said}");

    let mut server = Command::new(NSDB)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut health = None;
    for _ in 0..100 {
        health = http(port, "GET", "/api/v1/health", "");
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    let (status, body) = health.expect("the node set up by init serves");
    assert_eq!(status, 200, "{body}");
    use std::os::unix::fs::PermissionsExt;
    let db = data.join("node.db");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "node.db is for the node's user alone");

    // A node that lost its database (emptied): init, like serve, says to restore it, and
    // does not set a new node up in its place.
    std::fs::write(&db, b"").unwrap();
    let out = Command::new(NSDB)
        .args(["init", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("restore it from a backup"), "{said}");
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "nothing was set up"
    );
}

#[test]
fn a_hospital_enrollment_with_a_five_digit_code_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, node) = (dir.path().join("hub"), dir.path().join("node"));
    let run = |args: &[&str]| Command::new(NSDB).args(args).output().unwrap();
    let out = run(&[
        "provision",
        "hub-init",
        "--data",
        hub.to_str().unwrap(),
        "--listen",
        "127.0.0.1:7443",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node's data directory exists (as `nsdb init` makes it): node-key never creates one.
    nsdb_provisioning::create_private_dir(&node).unwrap();
    let out = run(&["provision", "node-key", "--data", node.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let issue = |code: &str| {
        run(&[
            "provision",
            "issue",
            "--data",
            hub.to_str().unwrap(),
            "--node-key",
            &key,
            "--role",
            "hospital",
            "--jurisdiction",
            code,
            "--name",
            "試験病院",
            "--out",
            dir.path().join("e.toml").to_str().unwrap(),
        ])
    };
    let out = issue("13990");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--jurisdiction") && said.contains("10 桁"),
        "{said}"
    );
    assert!(!dir.path().join("e.toml").exists());
    let out = issue("1399000036");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every command that opens an existing node's database (research, user key, user reset-totp,
/// backup, audit verify) refuses a mistyped `data_dir`, naming it and saying that `nsdb
/// init` sets a node up, and leaves nothing there: no empty node reporting 0 sheets.
#[test]
fn commands_on_a_node_refuse_a_data_dir_that_holds_no_node() {
    let dir = tempfile::tempdir().unwrap();
    write_key(dir.path(), "cd", 0o600);
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            r#"name = "hub-test"
role = "hub"
listen = "127.0.0.1:{}"
data_dir = "nothere"
key_file = "db.key"

[institution]
code = "0000000000"
name = "厚生労働省"
"#,
            free_port()
        ),
    )
    .unwrap();
    let data = dir.path().join("nothere");
    let out_dir = dir.path().join("out");
    let c = config.to_str().unwrap();
    let o = out_dir.to_str().unwrap();
    let key = dir.path().join("user.key");
    let k = key.to_str().unwrap();
    let backup = dir.path().join("backup");
    let b = backup.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["research", "stats", "--config", c],
        vec!["research", "stats", "--config", c, "--out", o],
        vec!["research", "export", "--config", c, "--out", o],
        vec!["research", "rotate-secret", "--config", c, "--yes"],
        vec![
            "user", "key", "--config", c, "--login", "doctor", "--out", k,
        ],
        vec!["user", "reset-totp", "--config", c, "doctor"],
        vec!["backup", "--config", c, b],
        vec!["audit", "verify", "--config", c],
    ];
    for args in commands {
        let out = Command::new(NSDB).args(&args).output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran: {said}");
        assert!(
            said.contains(&format!("{} がありません", data.display())),
            "{args:?}: {said}"
        );
        assert!(
            said.contains(&format!("nsdb init --config {c}")),
            "{args:?}: {said}"
        );
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
    // An existing, empty directory is refused the same way, and stays empty.
    std::fs::create_dir(&data).unwrap();
    let out = Command::new(NSDB)
        .args(["research", "stats", "--config", c])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ノードがありません"));
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}

/// `nsdb rules list` shows every disease of both programmes by the number a person knows it by
/// (告示番号, or a 小慢 disease's 疾患群・大分類・疾病番号, never a 告示番号 0), and `--judged`
/// ends with the share of 指定難病 recipients machine judgment covers.
#[test]
fn rules_list_names_every_disease_by_its_number_and_the_judged_share() {
    let out = nsdb(&["rules", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let forms = list["forms"].as_array().unwrap();
    let number = |id: &str| {
        forms
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["number"].as_str().unwrap().to_string())
    };
    assert_eq!(number("rinko-097").as_deref(), Some("97"));
    assert_eq!(number("iken-12-04-014").as_deref(), Some("12-04-014"));
    let rinko = forms
        .iter()
        .filter(|f| f["kind"] == "臨床調査個人票")
        .count();
    assert_eq!(rinko, 341, "every 指定難病 (告示番号 1–341)");
    assert!(forms.iter().filter(|f| f["kind"] == "医療意見書").count() > 700);

    let out = nsdb(&["rules", "list", "--judged"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let iken = text
        .lines()
        .find(|l| l.starts_with("iken-12-04-014"))
        .expect(&text);
    assert_eq!(iken.split_whitespace().nth(2), Some("12-04-014"), "{iken}");
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("machine judgment covers") && last.contains("指定難病 recipients"),
        "{last}"
    );
}

/// `nsdb user add --doctor-number`: only for doctors, checked, and the doctor's new sheets come
/// with it filled in.
#[tokio::test]
async fn a_doctors_number_given_at_user_add_is_on_every_sheet_they_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port());
    write_key(dir.path(), "ab", 0o600);
    init(&config);
    for (args, words) in [
        (
            [
                "--login",
                "c1",
                "--name",
                "事務 花子",
                "--kind",
                "clerk",
                "--doctor-number",
                "123",
            ],
            "指定医の利用者にだけ",
        ),
        (
            [
                "--login",
                "d1",
                "--name",
                "医師 一郎",
                "--kind",
                "nanbyo_doctor",
                "--doctor-number",
                "12 34",
            ],
            "使えない文字",
        ),
    ] {
        let out = user_add(&config, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            err.contains("--doctor-number: ") && err.contains(words),
            "{err}"
        );
    }
    let out = user_add(
        &config,
        &[
            "--login",
            "d2",
            "--name",
            "医師 二郎",
            "--kind",
            "nanbyo_doctor",
            "--doctor-number",
            "１２３４５",
            "--no-change-required",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let node = nsdb::Node::open(
        nsdb::NodeConfig::from_file(&config).unwrap(),
        nsdb::Clock::System,
    )
    .unwrap();
    let doctor = node
        .login("d2", "correct horse battery")
        .await
        .unwrap()
        .principal;
    let sheet = node
        .create_sheet(&doctor, "rinko-006", &Default::default())
        .await
        .unwrap();
    assert_eq!(
        sheet.items.get("doctor.number").map(String::as_str),
        Some("12345"),
        "the number, folded to half-width, is filled in"
    );
}
