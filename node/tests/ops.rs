//! Running a node as an operator does: saves while another process writes the database, a
//! data directory that lost its database, backup and restore, key rotation (and its interrupted
//! case), and a clean stop on SIGTERM. Each test drives the `nsdb` binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const NSDB: &str = env!("CARGO_BIN_EXE_nsdb");
const PASSWORD: &str = "correct horse battery";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A node's directory: node.toml, db.key (mode 600), data/.
struct Site {
    dir: tempfile::TempDir,
    port: u16,
}

impl Site {
    fn new() -> Site {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("node.toml"),
            format!(
                "name = \"hospital-ops\"\nrole = \"hospital\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nkey_file = \"db.key\"\n\n[institution]\ncode = \"1399000036\"\nname = \"試験病院\"\n"
            ),
        )
        .unwrap();
        let key = dir.path().join("db.key");
        std::fs::write(&key, "5a".repeat(32)).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        Site { dir, port }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self) -> PathBuf {
        self.path("node.toml")
    }

    fn nsdb(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(NSDB);
        cmd.arg(args[0]);
        let group = matches!(args[0], "user" | "audit");
        if group {
            cmd.arg(args[1]);
        }
        cmd.arg("--config").arg(self.config());
        let rest = if group { &args[2..] } else { &args[1..] };
        cmd.args(rest).env("NSDB_PASSWORD", PASSWORD);
        cmd.output().unwrap()
    }

    /// Adds a user; the first one on a new site sets the node up first (`nsdb init`), as an
    /// operator does (`nsdb user add` never creates a node).
    fn add_user(&self, login: &str) -> Output {
        if !self.path("data/node.db").exists() && !self.path("data/node.db.owner").exists() {
            let init = self.nsdb(&["init"]);
            assert!(
                init.status.success(),
                "{}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        self.nsdb(&[
            "user",
            "add",
            "--login",
            login,
            "--name",
            "運用 試験",
            "--kind",
            "nanbyo_doctor",
            "--no-change-required",
        ])
    }

    fn serve(&self) -> Child {
        let child = Command::new(NSDB)
            .args(["serve", "--config"])
            .arg(self.config())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if http(self.port, "GET", "/api/v1/health", None, "").is_some() {
                return child;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop(child);
        panic!("the node did not answer");
    }

    fn login(&self, login: &str) -> Option<String> {
        let (status, body) = http(
            self.port,
            "POST",
            "/api/v1/session",
            None,
            &format!(r#"{{"login":"{login}","password":"{PASSWORD}"}}"#),
        )?;
        if status != 201 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(v["token"].as_str()?.to_string())
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// One HTTP/1.1 request on loopback; returns (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// `GET /api/v1/sheets/{id}` as `token`'s user: the status and body.
fn get_sheet(port: u16, token: &str, id: &str) -> (u16, String) {
    http(
        port,
        "GET",
        &format!("/api/v1/sheets/{id}"),
        Some(token),
        "",
    )
    .unwrap()
}

/// Creates a sheet; its id and version (the JSON array a save states it edits).
fn create_sheet(port: u16, token: &str, name: &str) -> (String, String) {
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/sheets",
        Some(token),
        &format!(r#"{{"form_id":"rinko-006","items":{{"patient.name":"{name}"}}}}"#),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        v["id"].as_str().unwrap().to_string(),
        v["version"].to_string(),
    )
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A backup's `manifest` with its `sha256` replaced by the checksum of `db`, as someone
/// covering up a changed backup would write it.
fn with_checksum_of(manifest: &str, db: &[u8]) -> String {
    use sha2::Digest;
    let sum = hex::encode(sha2::Sha256::digest(db));
    manifest
        .lines()
        .map(|l| {
            if l.starts_with("sha256") {
                format!("sha256 = \"{sum}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn saves_never_fail_while_another_process_adds_users() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let server = site.serve();
    let token = site.login("dr-ops").unwrap();
    let (id, version) = create_sheet(site.port, &token, "並行 試験");
    let port = site.port;
    let saver = std::thread::spawn(move || {
        let mut statuses = Vec::new();
        for n in 0..150 {
            let r = http(
                port,
                "PUT",
                &format!("/api/v1/sheets/{id}"),
                Some(&token),
                &format!(
                    r#"{{"version":{version},"items":{{"patient.postal_code":"100{n:04}"}}}}"#
                ),
            );
            statuses.push(r);
        }
        statuses
    });
    let mut adds = Vec::new();
    for n in 0..6 {
        adds.push(site.add_user(&format!("dr-extra-{n}")));
    }
    let statuses = saver.join().unwrap();
    stop(server);
    for out in &adds {
        ok(out);
    }
    for r in statuses {
        let (status, body) = r.expect("every save is answered");
        assert_eq!(status, 200, "a save failed beside `nsdb user add`: {body}");
    }
}

#[test]
fn a_provisioned_node_refuses_an_empty_missing_or_foreign_database() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let db = site.path("data/node.db");
    let saved = site.path("node.db.saved");
    let move_db = |from: &std::path::Path, to: &std::path::Path| {
        for suffix in ["-wal", "-shm"] {
            let (f, t) = (
                format!("{}{suffix}", from.display()),
                format!("{}{suffix}", to.display()),
            );
            let _ = std::fs::remove_file(&t);
            let _ = std::fs::rename(&f, &t);
        }
        std::fs::rename(from, to).unwrap();
    };
    move_db(&db, &saved);

    let err = refused(&site.add_user("dr-other"));
    assert!(err.contains("missing"), "{err}");
    assert!(err.contains("nsdb restore"), "{err}");
    assert!(!db.exists(), "no new database was created");

    std::fs::write(&db, b"").unwrap();
    let err = refused(&site.add_user("dr-other"));
    assert!(err.contains("empty (0 bytes)"), "{err}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);

    // Another node's database, with the same key: refused for what it is.
    let other = Site::new();
    ok(&other.add_user("dr-elsewhere"));
    std::fs::copy(other.path("data/node.db"), &db).unwrap();
    let err = refused(&site.add_user("dr-other"));
    assert!(err.contains("belongs to node"), "{err}");

    move_db(&saved, &db);
    ok(&site.add_user("dr-other"));
}

#[test]
fn a_backup_taken_while_serving_restores_users_and_audit_and_refuses_tampering() {
    let site = Site::new();
    ok(&site.add_user("dr-before"));
    let server = site.serve();
    let token = site.login("dr-before").unwrap();
    create_sheet(site.port, &token, "控え 一郎");
    let backup = site.path("backup-1");
    let out = ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    assert!(out.contains("1 sheets"), "{out}");
    assert!(out.contains("chain verified"), "{out}");
    // While the node runs, restore refuses to replace its database.
    let err = refused(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(err.contains("stop it first"), "{err}");
    create_sheet(site.port, &token, "後で 次郎");
    stop(server);
    ok(&site.add_user("dr-after"));

    // The backup is still encrypted: no name in clear.
    let bytes = std::fs::read(backup.join("node.db")).unwrap();
    assert!(!bytes.starts_with(b"SQLite format 3"));
    assert!(!String::from_utf8_lossy(&bytes).contains("dr-before"));

    // Both sheets were never acknowledged by a hub (not enrolled): the restore asks for --yes.
    let restored = site.nsdb(&["restore", "--yes", backup.to_str().unwrap()]);
    let warned = String::from_utf8_lossy(&restored.stderr).into_owned();
    let out = ok(&restored);
    assert!(out.contains("restored 1 sheets"), "{out}");
    // Not enrolled: no advice to sync from a hub, before or after.
    for said in [&out, &warned] {
        assert!(said.contains("not enrolled with a hub"), "{said}");
        assert!(!said.contains("from the hub"), "{said}");
        assert!(!said.contains("let it sync"), "{said}");
    }
    let server = site.serve();
    assert!(site.login("dr-before").is_some(), "the user in the backup");
    assert!(site.login("dr-after").is_none(), "added after the backup");
    let token = site.login("dr-before").unwrap();
    let (_, list) = http(site.port, "GET", "/api/v1/sheets", Some(&token), "").unwrap();
    stop(server);
    assert!(
        list.contains("控え 一郎") && !list.contains("後で 次郎"),
        "{list}"
    );

    // A flipped byte is caught by the checksum; with the checksum forged, by the page HMACs.
    let tampered = site.path("backup-tampered");
    std::fs::create_dir(&tampered).unwrap();
    for f in ["node.db", "manifest.toml"] {
        std::fs::copy(backup.join(f), tampered.join(f)).unwrap();
    }
    let mut db = std::fs::read(tampered.join("node.db")).unwrap();
    let at = db.len() - 3000;
    db[at] ^= 0x40;
    std::fs::write(tampered.join("node.db"), &db).unwrap();
    let err = refused(&site.nsdb(&["restore", tampered.to_str().unwrap()]));
    assert!(err.contains("has changed since the backup"), "{err}");
    let manifest = std::fs::read_to_string(tampered.join("manifest.toml")).unwrap();
    std::fs::write(
        tampered.join("manifest.toml"),
        with_checksum_of(&manifest, &db),
    )
    .unwrap();
    let err = refused(&site.nsdb(&["restore", tampered.to_str().unwrap()]));
    assert!(err.contains("nothing was replaced"), "{err}");
    assert!(
        err.contains("page check") && err.contains("use another backup"),
        "{err}"
    );
    assert!(!err.contains("SQL logic error"), "{err}");
    let out = ok(&site.nsdb(&["restore", "--verify-only", backup.to_str().unwrap()]));
    assert!(out.contains("taken at 20") && !out.contains(" ms"), "{out}");
    ok(&site.add_user("dr-still-here"));
}

#[test]
fn a_backup_of_another_node_is_refused() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let other = Site::new();
    ok(&other.add_user("dr-elsewhere"));
    let backup = other.path("backup");
    ok(&other.nsdb(&["backup", backup.to_str().unwrap()]));
    let err = refused(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(
        err.contains("not of this node") && err.contains("move that identity.key aside"),
        "{err}"
    );
    assert!(site.login_offline("dr-ops"));
}

impl Site {
    /// Whether a user exists, by trying to add it again (refused as a duplicate).
    fn login_offline(&self, login: &str) -> bool {
        !self.add_user(login).status.success()
    }
}

#[test]
fn rekey_changes_the_key_and_an_interrupted_rekey_opens_with_one_of_the_two() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let old_key = std::fs::read_to_string(site.path("db.key")).unwrap();
    let out = ok(&site.nsdb(&["rekey"]));
    assert!(
        out.contains("db.key.old-"),
        "the key kept for good is named: {out}"
    );
    let new_key = std::fs::read_to_string(site.path("db.key")).unwrap();
    assert_ne!(old_key, new_key);
    assert_eq!(
        std::fs::read_to_string(site.path("db.key.old")).unwrap(),
        old_key
    );
    assert!(site.login_offline("dr-ops"), "data kept under the new key");

    // Interrupted after the database was switched, before the key file was: the node says
    // which key opens it, and --recover finishes the change.
    let config = nsdb::NodeConfig::from_file(&site.config()).unwrap();
    let current = nsdb::store::DbKey::from_hex(&new_key).unwrap();
    let next = nsdb::store::DbKey::from_bytes([0x77; 32]);
    nsdb::ops::rekey::stage(&config, &current, &next).unwrap();
    nsdb::ops::rekey::switch_database(&config).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(site.path("data/node.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the switched database is private at once"
        );
    }
    // A key file cut short by the interruption (never the only copy of a key) goes at --recover.
    std::fs::write(site.path("db.key.old.tmp"), "0123").unwrap();
    let err = refused(&site.add_user("dr-x"));
    assert!(
        err.contains("db.key.new") && err.contains("--recover"),
        "{err}"
    );
    let out = ok(&site.nsdb(&["rekey", "--recover"]));
    assert!(out.contains("opened with the new key"), "{out}");
    assert!(!site.path("db.key.old.tmp").exists());
    assert_eq!(
        std::fs::read_to_string(site.path("db.key")).unwrap(),
        next.to_hex()
    );
    assert!(site.login_offline("dr-ops"));

    // Interrupted before the switch: the old key still opens it; --recover undoes the rest.
    let after = nsdb::store::DbKey::from_bytes([0x78; 32]);
    nsdb::ops::rekey::stage(&config, &next, &after).unwrap();
    assert!(
        site.login_offline("dr-ops"),
        "still opens with the key file"
    );
    let out = ok(&site.nsdb(&["rekey", "--recover"]));
    assert!(out.contains("opened with the old key"), "{out}");
    assert!(!site.path("db.key.new").exists());
    assert!(!site.path("data/node.db.rekeying").exists());
}

#[test]
fn sigterm_finishes_and_exits_cleanly() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let mut server = site.serve();
    let token = site.login("dr-ops").unwrap();
    create_sheet(site.port, &token, "停止 試験");
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = server.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.unwrap_or_else(|| {
        let _ = server.kill();
        panic!("the node did not stop within 10 s of SIGTERM")
    });
    assert!(status.success(), "exit status {status}");
    ok(&site.add_user("dr-after-stop"));
}

#[test]
fn doctor_passes_a_good_install_and_says_what_to_fix_on_a_broken_one() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    // nsdb made its data directory for its owner only, so a new install passes as it is.
    let mode = std::fs::metadata(site.path("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "data directory mode {mode:o}");
    let out = ok(&site.nsdb(&["doctor"]));
    assert!(out.contains("chain verified"), "{out}");
    assert!(out.contains("not enrolled"), "{out}");

    // Broken: a key file others can read, an open data directory, a rule pack that is missing.
    std::fs::set_permissions(site.path("db.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(site.path("data"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = std::fs::read_to_string(site.config()).unwrap();
    config.push_str(&format!(
        "\n[rules]\npack = \"missing.pack\"\nministry_key = \"{}\"\n",
        "ab".repeat(32)
    ));
    std::fs::write(site.config(), config).unwrap();
    let out = site.nsdb(&["doctor"]);
    let err = refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("3 problem(s)"), "{err}\n{said}");
    assert!(said.contains("chmod 600"), "{said}");
    assert!(said.contains("chmod 700"), "{said}");
    assert!(said.contains("FIX  rule pack"), "{said}");
}

#[test]
fn a_damaged_database_refuses_writes_and_says_how_to_restore() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    for n in 0..40 {
        ok(&site.add_user(&format!("dr-filler-{n}")));
    }
    let db = site.path("data/node.db");
    let key = nsdb::store::DbKey::from_hex(&"5a".repeat(32)).unwrap();
    {
        let c = nsdb::store::connect(&db, Some(&key), rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    // Flip bytes inside one page past the schema (4096-byte pages).
    let mut bytes = std::fs::read(&db).unwrap();
    let pages = bytes.len() / 4096;
    assert!(pages > 4, "{pages} pages");
    let at = (pages - 2) * 4096 + 1000;
    for b in &mut bytes[at..at + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&db, &bytes).unwrap();

    let err = refused(&site.add_user("dr-new"));
    assert!(
        err.contains("損傷") && err.contains("nsdb restore"),
        "{err}"
    );
    let out = site.nsdb(&["doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("FIX  integrity"), "{said}");
    // The site is not enrolled: the advice does not count on the hub.
    assert!(said.contains("not enrolled with a hub"), "{said}");
    assert!(!said.contains("from the hub"), "{said}");
    let server = site.serve();
    let health = http(site.port, "GET", "/api/v1/health", None, "");
    stop(server);
    let (code, body) = health.unwrap();
    assert!(body.contains("\"status\":\"damaged\""), "{body}");
    assert_eq!(code, 503, "a damaged node is out of rotation: {body}");
}

/// The audit chain is verified each time the node starts: an entry changed behind its back
/// (with the database key, the trigger dropped) is recorded and raised for the 責任者 on
/// 利用状況の監視, and `nsdb audit verify` names the entry.
#[test]
fn a_tampered_audit_chain_is_found_at_start_and_raised_for_the_responsible() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let server = site.serve();
    assert!(site.login("dr-ops").is_some());
    stop(server);
    let key = nsdb::store::DbKey::from_hex(&"5a".repeat(32)).unwrap();
    let open = || {
        nsdb::store::connect(
            &site.path("data/node.db"),
            Some(&key),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )
        .unwrap()
    };
    let seq: i64 = {
        let c = open();
        c.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
        let seq = c
            .query_row(
                "SELECT max(seq) FROM audit WHERE action = 'login'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        c.execute("UPDATE audit SET user_id = NULL WHERE seq = ?1", [seq])
            .unwrap();
        seq
    };
    let alerts = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT count(*) FROM alerts WHERE rule = 'audit_chain' AND subject = 'node'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(alerts(&open()), 0);
    let server = site.serve();
    let mut raised = false;
    for _ in 0..100 {
        if alerts(&open()) == 1 {
            raised = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(server);
    assert!(raised, "the check at start raises the alert");
    let detail: String = open()
        .query_row(
            "SELECT detail FROM audit WHERE action = 'audit_verify_failed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(detail, format!("tampered seq={seq}"));
    let out = site.nsdb(&["audit", "verify"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("tampered: entry {seq} ")), "{said}");
}

/// Signs in through the API; the bearer token.
fn api_token(port: u16, login: &str, password: &str) -> String {
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/session",
        None,
        &serde_json::json!({"login": login, "password": password}).to_string(),
    )
    .expect("sign-in answered");
    assert_eq!(status, 201, "{login}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// Three consecutive free ports for the demo's nodes and QUIC listener, and its metrics ports
/// (`base + 10 ..= base + 12`).
fn free_port_base() -> u16 {
    'search: for _ in 0..200 {
        let base = rand::random_range(20_000u16..60_000);
        for p in (base..base + 4).chain(base + 10..base + 13) {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err()
                || std::net::UdpSocket::bind(("127.0.0.1", p)).is_err()
            {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free ports for the demo");
}

/// The log scan: the demo's day (the doctor's list, sheets, a new sheet saved and registered;
/// the reviewer's resolution and intake; a refused sign-in; the ministry's status) with every
/// log line the node writes at `debug` in JSON, then each line is searched for the patients'
/// names, かな, birth dates, addresses and insured numbers that crossed the API, and for the
/// passwords and tokens used.
#[test]
fn no_log_line_holds_personal_data_or_a_secret_through_the_demos_day() {
    use std::io::BufRead;
    let base = free_port_base();
    let data = tempfile::tempdir().unwrap();
    let mut demo = Command::new(NSDB)
        .args(["demo", "--port-base", &base.to_string(), "--data"])
        .arg(data.path())
        .env("NSDB_LOG", "debug")
        .env("NSDB_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = demo.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    // The demo prints the registered sheets' keys and birth dates, then "Press Ctrl-C".
    let mut printed = Vec::new();
    for line in std::io::BufReader::new(demo.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Press Ctrl-C");
        printed.push(line);
        if done {
            break;
        }
    }
    let (hub, hospital, municipality) = (base, base + 1, base + 2);
    let mut secrets: Vec<String> = vec![PASSWORD.into(), "demo".into()];
    let mut tokens = Vec::new();

    // The hospital: the doctor's list and sheets, a new sheet saved and registered.
    let doctor = api_token(hospital, "doctor", "demo");
    tokens.push(doctor.clone());
    let (status, body) = http(hospital, "GET", "/api/v1/sheets", Some(&doctor), "").unwrap();
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = page["rows"].as_array().expect("rows");
    assert!(rows.len() >= 10, "{} rows", rows.len());
    for row in rows {
        for field in ["name", "name_kana", "birth_date", "insured_no"] {
            if let Some(v) = row[field].as_str() {
                secrets.push(v.to_string());
            }
        }
    }
    for row in rows.iter().take(5) {
        let id = row["id"].as_str().unwrap();
        let (status, body) = http(
            hospital,
            "GET",
            &format!("/api/v1/sheets/{id}"),
            Some(&doctor),
            "",
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(a) = v["items"]["patient.address"].as_str() {
            secrets.push(a.to_string());
        }
    }
    let values = [
        ("patient.name", "記録 試子"),
        ("patient.name_kana", "キロク タメコ"),
        ("patient.birth_date", "1961-07-23"),
        ("patient.insured_no", "98765432"),
        ("patient.address", "東京都千代田区記録町3-2-1"),
    ];
    secrets.extend(values.iter().map(|(_, v)| v.to_string()));
    let items: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let (status, body) = http(
        hospital,
        "POST",
        "/api/v1/sheets",
        Some(&doctor),
        &serde_json::json!({"form_id": "rinko-006", "items": items}).to_string(),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created["id"].as_str().unwrap();
    let (status, body) = http(
        hospital,
        "PUT",
        &format!("/api/v1/sheets/{id}"),
        Some(&doctor),
        &serde_json::json!({"version": created["version"], "items": {"patient.postal_code": "100-0001"}})
            .to_string(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // Refused (the sheet is incomplete): the refusal is logged, its values are not.
    let _ = http(
        hospital,
        "POST",
        &format!("/api/v1/sheets/{id}/register"),
        Some(&doctor),
        "",
    );
    let (status, _) = http(
        hospital,
        "POST",
        "/api/v1/session",
        None,
        &serde_json::json!({"login": "doctor", "password": "wrong-password-1961"}).to_string(),
    )
    .unwrap();
    assert_eq!(status, 401);
    secrets.push("wrong-password-1961".into());

    // The municipality: a demo key resolved with its birth date, and once with a wrong one.
    let (key, birth) = printed
        .iter()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("アクセスキー ")?;
            let (key, birth) = rest.split_once("生年月日")?;
            Some((key.trim().to_string(), birth.trim().to_string()))
        })
        .unwrap_or_else(|| panic!("no demo key printed:\n{}", printed.join("\n")));
    secrets.push(key.clone());
    secrets.push(key.replace('-', ""));
    let reviewer = api_token(municipality, "reviewer", "demo");
    tokens.push(reviewer.clone());
    for b in [birth.as_str(), "1901-01-01"] {
        let (status, body) = http(
            municipality,
            "POST",
            "/api/v1/resolutions",
            Some(&reviewer),
            &serde_json::json!({"access_key": key, "birth_date": b}).to_string(),
        )
        .unwrap();
        assert!(status < 500, "{status} {body}");
    }
    let (status, body) = http(municipality, "GET", "/api/v1/intake", Some(&reviewer), "").unwrap();
    assert_eq!(status, 200, "{body}");

    // The hub: the ministry looks at the sync status.
    let ministry = api_token(hub, "ministry", "demo");
    tokens.push(ministry.clone());
    let (status, body) = http(hub, "GET", "/api/v1/sync/status", Some(&ministry), "").unwrap();
    assert_eq!(status, 200, "{body}");
    // Let a few sync rounds carry the new sheet and the resolution.
    std::thread::sleep(Duration::from_secs(3));

    demo.kill().unwrap();
    let _ = demo.wait();
    let lines = log.join().unwrap();
    // The scan can fail: the requests above were logged, as JSON.
    let requests = lines
        .iter()
        .filter(|l| l.contains("/api/v1/sheets"))
        .count();
    assert!(
        requests >= 5,
        "{requests} request lines in {} lines",
        lines.len()
    );
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    secrets.extend(tokens);
    secrets.retain(|s| s.chars().count() >= 4 && s != "demo");
    secrets.sort();
    secrets.dedup();
    assert!(secrets.len() > 40, "{} values to look for", secrets.len());
    let leaks: Vec<String> = lines
        .iter()
        .flat_map(|line| {
            secrets
                .iter()
                .filter(|s| line.contains(s.as_str()))
                .map(move |s| format!("{s:?} in {line}"))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "personal data or a secret in the log:\n{}",
        leaks.join("\n")
    );
}

/// The median of `metric` in the JSON lines of `nsdb bench … --json`.
fn figure_of(said: &str, metric: &str) -> f64 {
    said.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["metric"] == metric)
        .and_then(|v| v["median"].as_f64())
        .unwrap_or_else(|| panic!("no {metric} in\n{said}"))
}

/// A few trials of `nsdb bench crash` (SIGKILL while a writer saves through the API): every
/// acknowledged save is there afterwards and the database is intact.
#[test]
fn a_node_killed_while_saving_keeps_every_acknowledged_save() {
    let out = Command::new(NSDB)
        .args(["bench", "crash", "--trials", "2", "--json"])
        .output()
        .unwrap();
    let said = ok(&out);
    let figure = |metric: &str| figure_of(&said, metric);
    assert_eq!(figure("trials"), 2.0, "{said}");
    assert!(figure("acknowledged writes") > 0.0, "{said}");
    assert_eq!(figure("lost writes"), 0.0, "{said}");
    assert_eq!(figure("damaged databases"), 0.0, "{said}");
}

/// `nsdb bench load` on a small scale: signed-in users' day over HTTP against the node as its
/// own process answers every request and loses no acknowledged save.
#[test]
fn a_small_load_is_answered_without_errors_and_loses_no_save() {
    let out = Command::new(NSDB)
        .args([
            "bench",
            "load",
            "--users",
            "4",
            "--seconds",
            "4",
            "--sheets",
            "50",
            "--no-saturation",
            "--json",
        ])
        .output()
        .unwrap();
    let said = ok(&out);
    let figure = |metric: &str| figure_of(&said, metric);
    assert!(figure("all requests") >= 4.0, "{said}");
    assert_eq!(figure("all errors"), 0.0, "{said}");
    assert_eq!(figure("acknowledged saves lost"), 0.0, "{said}");
}

/// A small file system mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "16m") on `at`. Needs root: outside CI a machine without
    /// it skips the test (None, said on stderr); in CI (`CI=true`) that fails the test.
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=700"),
                "tmpfs",
            ])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            other => {
                let why = format!("cannot mount a tmpfs (needs root): {other:?}");
                assert!(std::env::var("CI").is_err(), "{why}");
                eprintln!("skipped: {why}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The disk fills up under a serving node: saves are refused with a clear message (507), every
/// acknowledged save is still there, reads go on, and saving works again once space returns.
#[test]
fn a_full_disk_refuses_saves_clearly_loses_nothing_and_recovers_when_space_returns() {
    let site = Site::new();
    let Some(_fs) = Tmpfs::mount(&site.path("data"), "16m") else {
        return;
    };
    ok(&site.add_user("dr-disk"));
    // Stopped however the test ends, before the file system is unmounted.
    struct Serving(Option<Child>);
    impl Drop for Serving {
        fn drop(&mut self) {
            if let Some(c) = self.0.take() {
                stop(c);
            }
        }
    }
    let server = Serving(Some(site.serve()));
    let token = site.login("dr-disk").expect("signed in");
    let mut acknowledged = Vec::new();
    for n in 0..3 {
        acknowledged.push(create_sheet(site.port, &token, &format!("容量 試験{n}")));
    }
    // Fill the file system to the last byte.
    {
        let mut filler = std::fs::File::create(site.path("data/filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
        let small = [0u8; 512];
        while filler.write_all(&small).is_ok() {}
        let _ = filler.sync_all();
    }
    let address = "満".repeat(1500);
    let mut refused = None;
    for n in 0..200 {
        let body = serde_json::json!({"form_id": "rinko-006", "items": {
            "patient.name": format!("満杯 試験{n}"), "patient.address": address}})
        .to_string();
        let (status, answer) =
            http(site.port, "POST", "/api/v1/sheets", Some(&token), &body).unwrap();
        match status {
            201 => {
                let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                acknowledged.push((
                    v["id"].as_str().unwrap().to_string(),
                    v["version"].to_string(),
                ));
            }
            _ => {
                refused = Some((status, answer));
                break;
            }
        }
    }
    let (status, answer) = refused.expect("a save refused while the disk is full");
    assert_eq!(status, 507, "{answer}");
    assert!(
        answer.contains("disk_full") && answer.contains("ディスクに空きがない"),
        "{answer}"
    );
    // The node still answers. Opening a patient's sheet writes its audit entry first, so while
    // nothing can be written it is refused with the same message rather than shown unaudited.
    // Health is not "ok" while the disk is full: degraded, naming the refused write.
    let (status, health) = http(site.port, "GET", "/api/v1/health", None, "").unwrap();
    assert_eq!(status, 200);
    assert!(
        health.contains("\"status\":\"degraded\"") && health.contains("保存できなかった"),
        "{health}"
    );
    let (id, _) = &acknowledged[0];
    let (status, body) = get_sheet(site.port, &token, id);
    assert!(status == 507 || status == 200, "{status} {body}");
    // Space returns: everything acknowledged is there, and the next save is stored.
    std::fs::remove_file(site.path("data/filler")).unwrap();
    for (id, _) in &acknowledged {
        let (status, body) = get_sheet(site.port, &token, id);
        assert_eq!(status, 200, "{id}: {body}");
    }
    let (id, _) = create_sheet(site.port, &token, "容量 回復");
    drop(server);
    let db = site.path("data/node.db");
    let key = nsdb::store::DbKey::from_hex(&"5a".repeat(32)).unwrap();
    let c =
        nsdb::store::connect(&db, Some(&key), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    for (id, _) in acknowledged.iter().chain([&(id, String::new())]) {
        let found: i64 = c
            .query_row("SELECT count(*) FROM sheets WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(found, 1, "{id} lost");
    }
}

/// A node that lost its whole data directory comes back from node.toml, its key file and a
/// backup: enrolled as before, with the same identity; a different identity is never replaced.
#[test]
fn a_node_that_lost_its_disk_comes_back_from_config_key_and_backup() {
    let site = Site::new();
    ok(&site.add_user("dr-lost"));
    std::fs::write(site.path("data/seal.key"), "5b".repeat(32)).unwrap();
    std::fs::write(site.path("data/enrolled.toml"), "# as at the backup\n").unwrap();
    // The check tool's key information handed out: sealed files made with it must still open.
    std::fs::write(
        site.path("data/key-info.issued"),
        "age1example 2027-03-31\n",
    )
    .unwrap();
    let identity = std::fs::read(site.path("data/identity.key")).unwrap();
    let backup = site.path("backup");
    let out = ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    assert!(
        out.contains("identity.key") && out.contains("seal.key"),
        "{out}"
    );
    let manifest = std::fs::read_to_string(backup.join("manifest.toml")).unwrap();
    assert!(manifest.contains("\"identity.key\""), "{manifest}");
    // The identity travels encrypted: not in clear in the backup.
    let bytes = std::fs::read(backup.join("node.db")).unwrap();
    let identity_text = String::from_utf8_lossy(&identity).trim().to_string();
    assert!(!String::from_utf8_lossy(&bytes).contains(&identity_text));

    std::fs::remove_dir_all(site.path("data")).unwrap();
    let out = ok(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(
        out.contains("put back") && out.contains("identity.key"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(site.path("data/identity.key")).unwrap(),
        identity
    );
    assert_eq!(
        std::fs::read_to_string(site.path("data/seal.key")).unwrap(),
        "5b".repeat(32)
    );
    assert_eq!(
        std::fs::read_to_string(site.path("data/key-info.issued")).unwrap(),
        "age1example 2027-03-31\n"
    );
    let server = site.serve();
    assert!(site.login("dr-lost").is_some(), "the user in the backup");
    stop(server);

    // Another node's identity in the data directory is never overwritten: refused, named.
    let other = Site::new();
    ok(&other.add_user("dr-other"));
    std::fs::remove_file(site.path("data/node.db")).unwrap();
    std::fs::copy(
        other.path("data/identity.key"),
        site.path("data/identity.key"),
    )
    .unwrap();
    let err = refused(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(err.contains("not of this node"), "{err}");
    std::fs::write(site.path("data/identity.key"), &identity).unwrap();
    // A newer registry is kept as it is; a different seal key is refused, named.
    std::fs::write(site.path("data/enrolled.toml"), "# newer\n").unwrap();
    let out = ok(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(
        out.contains("kept as they are") && out.contains("enrolled.toml"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(site.path("data/enrolled.toml")).unwrap(),
        "# newer\n"
    );
    std::fs::write(site.path("data/seal.key"), "5c".repeat(32)).unwrap();
    let err = refused(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(
        err.contains("seal.key differs") && err.contains("nothing was replaced"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(site.path("data/seal.key")).unwrap(),
        "5c".repeat(32)
    );
}

/// A backup taken before `nsdb rekey` is refused with the node's new key, naming the key
/// fingerprint it needs, and restored with `--key-file` the old key: the node then starts with
/// its configured (new) key.
#[test]
fn a_backup_taken_before_a_rekey_is_restored_with_the_old_key() {
    let site = Site::new();
    ok(&site.add_user("dr-rotated"));
    let backup = site.path("backup");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let manifest = std::fs::read_to_string(backup.join("manifest.toml")).unwrap();
    let fingerprint = manifest
        .lines()
        .find_map(|l| l.strip_prefix("key_fingerprint = "))
        .expect("a key fingerprint in the manifest")
        .trim_matches('"')
        .to_string();
    assert_eq!(fingerprint.len(), 16, "{manifest}");
    ok(&site.nsdb(&["rekey"]));
    ok(&site.add_user("dr-after-rekey"));
    // A second rekey replaces db.key.old; the key the backup needs is still kept, under its
    // fingerprint, and the refusal names that file.
    ok(&site.nsdb(&["rekey"]));
    let err = refused(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    let kept = format!("db.key.old-{fingerprint}");
    assert!(err.contains(&kept) && err.contains("--key-file"), "{err}");
    let old = site.path(&kept);
    assert_ne!(
        std::fs::read_to_string(&old).unwrap(),
        std::fs::read_to_string(site.path("db.key.old")).unwrap(),
        "db.key.old is the key of the first rekey now"
    );
    let leftovers: Vec<_> = std::fs::read_dir(site.path(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let out = ok(&site.nsdb(&[
        "restore",
        "--key-file",
        old.to_str().unwrap(),
        backup.to_str().unwrap(),
    ]));
    assert!(out.contains("re-encrypted"), "{out}");
    let server = site.serve();
    assert!(site.login("dr-rotated").is_some(), "the user in the backup");
    assert!(
        site.login("dr-after-rekey").is_none(),
        "added after the backup"
    );
    stop(server);
    let out = ok(&site.nsdb(&["rekey", "--recover"]));
    assert!(out.contains("no interrupted rekey"), "{out}");

    // The backup's database put in place by hand: serve and --recover agree that no rekey was
    // interrupted, and both say to restore with the previous key.
    std::fs::copy(backup.join("node.db"), site.path("data/node.db")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(site.path(&format!("data/node.db{suffix}")));
    }
    let err = refused(&site.nsdb(&["serve"]));
    assert!(
        err.contains("previous key")
            && err.contains("--key-file")
            && !err.contains("interrupted nsdb rekey"),
        "{err}"
    );
    let out = site.nsdb(&["rekey", "--recover"]);
    let said = String::from_utf8_lossy(&out.stdout);
    let err = refused(&out);
    assert!(said.contains("no interrupted rekey"), "{said}");
    assert!(
        err.contains("previous key") && err.contains("--key-file"),
        "{err}"
    );
}

/// A backup that did not finish is never taken for one: a directory without a manifest is
/// refused as incomplete; a full disk says which path and how much space, and leaves nothing.
#[test]
fn an_unfinished_backup_is_never_taken_for_a_real_one() {
    let site = Site::new();
    ok(&site.add_user("dr-partial"));
    let partial = site.path("backup-killed");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("node.db"), b"half a database").unwrap();
    let err = refused(&site.nsdb(&["restore", partial.to_str().unwrap()]));
    assert!(
        err.contains("this backup is incomplete (no manifest") && err.contains("take another"),
        "{err}"
    );
    // A cause is said once.
    let file = site.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = refused(&site.nsdb(&["backup", file.to_str().unwrap()]));
    assert!(err.contains("not a new or empty directory"), "{err}");
    let missing = site.path("no-such-backup");
    let err = refused(&site.nsdb(&["restore", missing.to_str().unwrap()]));
    assert!(err.contains("there is no backup directory at"), "{err}");
    let backup = site.path("backup");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let no_db = site.path("backup-without-db");
    std::fs::create_dir(&no_db).unwrap();
    std::fs::copy(backup.join("manifest.toml"), no_db.join("manifest.toml")).unwrap();
    let err = refused(&site.nsdb(&["restore", no_db.to_str().unwrap()]));
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");

    let Some(_fs) = Tmpfs::mount(&site.path("small"), "64k") else {
        return;
    };
    let dest = site.path("small/backup");
    let err = refused(&site.nsdb(&["backup", dest.to_str().unwrap()]));
    assert!(
        err.contains("is full") && err.contains(dest.to_str().unwrap()) && err.contains("bytes"),
        "{err}"
    );
    assert!(!err.contains("管理者に連絡"), "{err}");
    // Nothing it wrote stays, not even the backup directory it made.
    assert!(!dest.exists(), "a failed backup left {}", dest.display());
}

#[test]
fn doctor_on_an_emptied_database_says_it_was_lost_and_gives_the_restore_that_brings_it_back() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let backup = site.path("backup-empty");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let db = site.path("data/node.db");
    std::fs::write(&db, b"").unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let out = site.nsdb(&["doctor"]);
    refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    let line = said
        .lines()
        .find(|l| l.starts_with("FIX  database"))
        .unwrap_or_else(|| panic!("no database finding in\n{said}"));
    assert!(line.contains("empty (0 bytes)"), "{line}");
    assert!(line.contains("was lost"), "{line}");
    let command = format!(
        "nsdb restore --config {} BACKUP_DIR",
        site.config().display()
    );
    assert!(line.contains(&command), "{line}");
    // The command it gives, run with the backup, brings the node back.
    ok(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    let out = ok(&site.nsdb(&["doctor"]));
    assert!(out.contains("chain verified"), "{out}");
}

#[test]
fn doctor_says_a_database_it_cannot_read_is_unreadable_and_what_to_do() {
    let site = Site::new();
    ok(&site.add_user("dr-ops"));
    let db = site.path("data/node.db");
    let aside = site.path("node.db.aside");
    std::fs::rename(&db, &aside).unwrap();
    // A directory where the file should be: unreadable as a database for every user, root too.
    std::fs::create_dir(&db).unwrap();
    let out = site.nsdb(&["doctor"]);
    refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    let line = said
        .lines()
        .find(|l| l.starts_with("FIX  database"))
        .unwrap_or_else(|| panic!("no database finding in\n{said}"));
    assert!(
        line.contains("is a directory, not a database file"),
        "{line}"
    );
    assert!(line.contains("mv "), "{line}");
    std::fs::remove_dir(&db).unwrap();
    std::fs::rename(&aside, &db).unwrap();

    // A file without read permission: only a user other than root is stopped by its mode.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!(
            "NOTE: running as root, which reads a file of mode 000: the mode sub-case is skipped (the directory case above ran)"
        );
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
        let out = site.nsdb(&["doctor"]);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
        refused(&out);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("FIX  database") && said.contains("cannot read"),
            "{said}"
        );
        assert!(said.contains("chmod 600"), "{said}");
    }
    ok(&site.nsdb(&["doctor"]));
}

#[test]
fn health_and_metrics_report_free_space_and_health_is_degraded_below_the_configured_minimum() {
    let site = Site::new();
    let metrics_port = free_port();
    let config = std::fs::read_to_string(site.config()).unwrap().replace(
        "[institution]",
        &format!(
            "metrics_listen = \"127.0.0.1:{metrics_port}\"\nmin_free_disk_mib = 1\n\n[institution]"
        ),
    );
    std::fs::write(site.config(), &config).unwrap();
    ok(&site.add_user("dr-space"));
    let server = site.serve();
    let health = http(site.port, "GET", "/api/v1/health", None, "");
    let metrics = http(metrics_port, "GET", "/metrics", None, "");
    stop(server);
    let (status, body) = health.unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok", "{body}");
    assert!(v["data_dir_free_bytes"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(v["min_free_bytes"], 1u64 << 20, "{body}");
    let (_, text) = metrics.expect("metrics answer");
    let free: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("nsdb_data_dir_free_bytes "))
        .unwrap_or_else(|| panic!("no nsdb_data_dir_free_bytes in\n{text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(free > 0.0, "{free}");

    // A minimum no disk meets (about 1 EiB): degraded, saying why; doctor says FIX.
    let config = config.replace(
        "min_free_disk_mib = 1\n",
        "min_free_disk_mib = 1000000000000\n",
    );
    std::fs::write(site.config(), &config).unwrap();
    let server = site.serve();
    let health = http(site.port, "GET", "/api/v1/health", None, "");
    stop(server);
    let (status, body) = health.unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "degraded", "{body}");
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("min_free_disk_mib"),
        "{body}"
    );
    let out = site.nsdb(&["doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("FIX  free disk"), "{said}");
}

#[test]
fn restore_lists_the_sheets_the_hub_never_acknowledged_and_replaces_nothing_without_yes() {
    let site = Site::new();
    ok(&site.add_user("dr-restore"));
    let server = site.serve();
    let token = site.login("dr-restore").unwrap();
    let (before, _) = create_sheet(site.port, &token, "控え 一郎");
    let backup = site.path("backup-unacked");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let (after, _) = create_sheet(site.port, &token, "後書 二郎");
    stop(server);

    // Not enrolled: the hub acknowledged nothing. Without --yes (and no terminal) nothing is
    // replaced; the warning names the count and the ids, never a patient's name.
    let err = refused(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(err.contains("2 sheet(s)"), "{err}");
    assert!(err.contains(&before) && err.contains(&after), "{err}");
    assert!(err.contains("nothing was replaced"), "{err}");
    assert!(
        err.contains("nsdb backup") && err.contains("--yes"),
        "{err}"
    );
    assert!(!err.contains("控え") && !err.contains("後書"), "{err}");
    let aside = std::fs::read_dir(site.path("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("before-restore"));
    assert!(!aside, "the database was replaced without --yes");
    let server = site.serve();
    let token = site.login("dr-restore").unwrap();
    assert_eq!(get_sheet(site.port, &token, &after).0, 200);
    stop(server);

    // With --yes it warns the same and restores: the sheet written after the backup is gone.
    let out = site.nsdb(&["restore", "--yes", backup.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let said = ok(&out);
    assert!(err.contains("2 sheet(s)"), "{err}");
    assert!(said.contains("restored 1 sheets"), "{said}");
    let server = site.serve();
    let token = site.login("dr-restore").unwrap();
    assert_eq!(get_sheet(site.port, &token, &before).0, 200);
    assert_eq!(get_sheet(site.port, &token, &after).0, 404);
    stop(server);
}

/// Waits up to `within` for `child` to exit: its status and how long it took, or None (it was
/// killed then).
fn exits_within(
    child: &mut Child,
    within: Duration,
) -> Option<(std::process::ExitStatus, Duration)> {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Whether the server closed `stream` (end of file or a reset), waiting at most its read
/// timeout; false when nothing came before the timeout.
fn closed_by_server(stream: &mut impl Read) -> bool {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => true,
        // Nothing is answered to a head that never arrived whole.
        Ok(n) => panic!("answered: {}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// What `nsdb serve` allows a request's head, and the most a stop waits for requests in flight
/// (docs/operations.md, "Serving"; systemd's TimeoutStopSec is 30 s).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const STOP_BOUND: Duration = Duration::from_secs(20);

#[test]
fn a_request_head_that_stalls_or_trickles_is_cut_off_after_5_s() {
    let site = Site::new();
    ok(&site.add_user("dr-slow"));
    let server = site.serve();
    // Half a head, then nothing: closed without an answer once the head's time is up.
    let start = std::time::Instant::now();
    let mut half = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    half.write_all(b"POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .unwrap();
    assert!(closed_by_server(&mut half), "a stalled head was kept 30 s");
    let waited = start.elapsed();
    assert!(
        waited >= HEAD_TIMEOUT - Duration::from_millis(500) && waited < HEAD_TIMEOUT * 3,
        "closed after {waited:?}"
    );
    // A head sent a byte at a time never finishes either: the time is for the whole head.
    let start = std::time::Instant::now();
    let mut trickle = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    let head = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(200)
    );
    let mut cut = None;
    for byte in head.as_bytes() {
        if trickle.write_all(&[*byte]).is_err() {
            cut = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cut = cut.expect("a head trickled over 40 s was read whole");
    assert!(cut < HEAD_TIMEOUT * 3, "cut off after {cut:?}");
    // Everyone else is answered as before.
    let (status, body) = http(site.port, "GET", "/api/v1/health", None, "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(site.login("dr-slow").is_some());
    stop(server);
}

#[test]
fn a_stalled_client_never_holds_a_stop_and_nothing_acknowledged_is_lost() {
    let site = Site::new();
    ok(&site.add_user("dr-stall"));
    // This run's log, to read what it says about the stop.
    let log = site.path("serve.log");
    let mut server = Command::new(NSDB)
        .args(["serve", "--config"])
        .arg(site.config())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if http(site.port, "GET", "/api/v1/health", None, "").is_some() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !up {
        stop(server);
        panic!("the node did not answer");
    }
    let token = site.login("dr-stall").unwrap();
    let (id, _) = create_sheet(site.port, &token, "停止 待機");
    // A client that sent half a request head, and one whose head is whole but whose body never
    // comes (only the stop's bound ends that one).
    let mut half = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    half.write_all(b"POST /api/v1/sheets HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthoriz")
        .unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    slow.write_all(
        b"POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"login\":\"dr-stall\",",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    // Within the bound, well before systemd's TimeoutStopSec=30 would kill it; status 0.
    let (status, took) = exits_within(&mut server, Duration::from_secs(40))
        .expect("the node did not stop within 40 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(
        took < STOP_BOUND + Duration::from_secs(5),
        "stopped after {took:?}"
    );
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(closed_by_server(&mut slow));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("finishing requests in flight (at most 20 s)")
            && said.contains("closed the connections still open 20 s after the stop"),
        "{said}"
    );
    // What was acknowledged before the stop is there after it.
    let server = site.serve();
    let token = site.login("dr-stall").unwrap();
    let (status, body) = get_sheet(site.port, &token, &id);
    assert_eq!(status, 200, "{body}");
    stop(server);
}

/// A node listening over TLS with a certificate for `localhost` made for the test; the
/// certificate (DER) a client trusts.
fn tls_site() -> (Site, Vec<u8>) {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(site.path("server.pem"), cert.pem()).unwrap();
    nsdb_provisioning::write_secret_file(&site.path("server.key"), &key.serialize_pem()).unwrap();
    std::fs::set_permissions(
        site.path("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let config = std::fs::read_to_string(site.config()).unwrap().replacen(
        "\n[institution]",
        "tls = { cert = \"server.pem\", key = \"server.key\" }\n\n[institution]",
        1,
    );
    std::fs::write(site.config(), config).unwrap();
    (site, cert.der().to_vec())
}

/// A TLS connection to `port` that trusts `cert` (the handshake happens at the first write).
fn tls_connect(
    port: u16,
    cert: &[u8],
) -> tokio_rustls::rustls::StreamOwned<tokio_rustls::rustls::ClientConnection, TcpStream> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.to_vec().into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn over_tls_a_stalled_head_is_cut_off_and_never_holds_a_stop() {
    let (site, cert) = tls_site();
    ok(&site.add_user("dr-tls"));
    let mut server = Command::new(NSDB)
        .args(["serve", "--config"])
        .arg(site.config())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let health = b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut up = false;
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", site.port)).is_ok() {
            let mut s = tls_connect(site.port, &cert);
            let mut answer = String::new();
            if s.write_all(health).is_ok() && s.read_to_string(&mut answer).is_ok() {
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                up = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !up {
        stop(server);
        panic!("the node did not answer over TLS");
    }
    // Half a head after the handshake: closed once the head's time is up.
    let start = std::time::Instant::now();
    let mut half = tls_connect(site.port, &cert);
    half.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: loc")
        .unwrap();
    half.flush().unwrap();
    assert!(closed_by_server(&mut half), "a stalled head was kept 30 s");
    let waited = start.elapsed();
    assert!(
        waited >= HEAD_TIMEOUT - Duration::from_millis(500) && waited < HEAD_TIMEOUT * 3,
        "closed after {waited:?}"
    );
    // Another one, then SIGTERM: the stalled head does not hold the stop.
    let mut stalled = tls_connect(site.port, &cert);
    stalled
        .write_all(b"POST /api/v1/session HTTP/1.1\r\nHo")
        .unwrap();
    stalled.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let (status, took) = exits_within(&mut server, Duration::from_secs(40))
        .expect("the node did not stop within 40 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(took < HEAD_TIMEOUT * 3, "stopped after {took:?}");
}

#[test]
fn version_names_the_schema_it_migrates_to_and_the_commit_it_was_built_from() {
    let out = Command::new(NSDB).arg("--version").output().unwrap();
    let said = ok(&out);
    let expected = format!(
        "nsdb {} (schema {}, commit ",
        env!("CARGO_PKG_VERSION"),
        nsdb::store::schema_version()
    );
    assert!(said.starts_with(&expected), "{said}");
    let commit = said
        .trim_end()
        .strip_prefix(&expected)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{said}"));
    // Built from this checkout: the short hash of the commit (or "unknown" outside git).
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{said}"
    );
}

/// Runs `nsdb ARGS --config …` (as `uid` when given) and expects it to refuse within 30 s (a
/// `serve` that started instead is stopped and fails the test); its stderr.
fn refused_within(site: &Site, args: &[&str], uid: Option<u32>) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(NSDB);
    cmd.arg(args[0])
        .arg("--config")
        .arg(site.config())
        .args(&args[1..]);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            return refused(&child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(child);
    panic!("nsdb {args:?} did not refuse within 30 s");
}

/// Checkpoints the site's database into node.db and flips bytes inside its page `page`
/// (4096-byte pages, counted from 0), as a failing disk would.
fn damage_page(site: &Site, page: usize) {
    let db = site.path("data/node.db");
    let key = nsdb::store::DbKey::from_hex(&"5a".repeat(32)).unwrap();
    {
        let c = nsdb::store::connect(&db, Some(&key), rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    let at = page * 4096 + 1000;
    assert!(bytes.len() > at + 8, "{} bytes", bytes.len());
    for b in &mut bytes[at..at + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&db, &bytes).unwrap();
}

/// The doctor's line for `check`, FIX or not.
fn doctor_line(said: &str, check: &str) -> String {
    said.lines()
        .find(|l| {
            l.get(5..)
                .is_some_and(|rest| rest.starts_with(&format!("{check:<15} ")))
        })
        .unwrap_or_else(|| panic!("no {check} line in\n{said}"))
        .to_string()
}

/// One damaged page inside the file: serve, doctor, backup and rekey each name the database
/// file and say to restore the latest backup (with the command and the guide's section), and
/// what comes back after it on this node; the restore they give brings the node back.
#[test]
fn a_damaged_page_is_named_with_the_restore_by_serve_doctor_backup_and_rekey() {
    let site = Site::new();
    ok(&site.add_user("dr-damage"));
    let backup = site.path("backup-good");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    // The second page: read as the node opens, so it cannot start at all.
    damage_page(&site, 1);
    let db = site.path("data/node.db");
    let db = db.display().to_string();
    let restore = format!(
        "nsdb restore --config {} BACKUP_DIR",
        site.config().display()
    );
    let says_restore = |said: &str, command: &str| {
        assert!(
            said.contains(&format!("database {db} is damaged")),
            "{said}"
        );
        assert!(said.contains(command), "{said}");
        assert!(said.contains("\"Backup and restore\""), "{said}");
        // Not enrolled: nothing comes back from a hub, and the advice does not say it would.
        assert!(said.contains("not enrolled with a hub"), "{said}");
        assert!(!said.contains("from the hub"), "{said}");
        assert!(!said.contains("database error:"), "{said}");
    };

    let err = refused_within(&site, &["serve"], None);
    says_restore(&err, "nsdb restore --config FILE BACKUP_DIR");

    let out = site.nsdb(&["doctor"]);
    refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    let line = doctor_line(&said, "integrity");
    assert!(line.starts_with("FIX"), "{line}");
    says_restore(&line, &restore);
    assert!(!said.contains("FIX  owner"), "said once: {said}");

    let dest = site.path("backup-of-damage");
    let err = refused(&site.nsdb(&["backup", dest.to_str().unwrap()]));
    says_restore(&err, &restore);
    assert!(!dest.exists(), "a failed backup left {}", dest.display());

    let err = refused(&site.nsdb(&["rekey"]));
    says_restore(&err, &restore);
    // The refused rekey leaves nothing of itself (no new key, no staged copy).
    assert!(!site.path("db.key.new").exists());
    assert!(!site.path("data/node.db.rekeying").exists());

    // What they say to do brings the node back.
    ok(&site.nsdb(&["restore", "--yes", backup.to_str().unwrap()]));
    let out = ok(&site.nsdb(&["doctor"]));
    assert!(out.contains("chain verified"), "{out}");
}

/// Damage in the first page cannot be told from a wrong key: serve and doctor say both, and
/// how to tell (the key's fingerprint, which doctor prints and a backup's manifest records);
/// a backup damaged there is refused as damaged, not as a wrong key.
#[test]
fn a_damaged_first_page_is_said_to_be_a_wrong_key_or_damage_with_the_fingerprint_to_tell() {
    let site = Site::new();
    ok(&site.add_user("dr-first"));
    let backup = site.path("backup-first");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let manifest = std::fs::read_to_string(backup.join("manifest.toml")).unwrap();
    let fingerprint = manifest
        .lines()
        .find_map(|l| l.strip_prefix("key_fingerprint = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let out = ok(&site.nsdb(&["doctor"]));
    assert!(
        doctor_line(&out, "key").contains(&format!("fingerprint {fingerprint}")),
        "{out}"
    );

    damage_page(&site, 0);
    let damaged = std::fs::read(site.path("data/node.db")).unwrap();
    let says_both = |said: &str| {
        assert!(
            said.contains(&site.path("data/node.db").display().to_string()),
            "{said}"
        );
        assert!(
            said.contains("鍵が違うか、ファイルの先頭ページが壊れています"),
            "{said}"
        );
        assert!(
            said.contains("the key is wrong, or the file's first page is damaged"),
            "{said}"
        );
        assert!(said.contains("key_fingerprint"), "{said}");
        assert!(said.contains("nsdb restore --config"), "{said}");
        assert!(said.contains("Backup and restore"), "{said}");
    };
    says_both(&refused_within(&site, &["serve"], None));
    let out = site.nsdb(&["doctor"]);
    refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        doctor_line(&said, "key").contains(&format!("fingerprint {fingerprint}")),
        "{said}"
    );
    let line = doctor_line(&said, "database");
    assert!(line.starts_with("FIX"), "{line}");
    says_both(&said);
    // Nothing was changed by looking.
    assert!(std::fs::read(site.path("data/node.db")).unwrap() == damaged);

    // A backup whose first page is damaged (its checksum forged) is refused as damaged.
    let broken = site.path("backup-broken");
    std::fs::create_dir(&broken).unwrap();
    let mut db = std::fs::read(backup.join("node.db")).unwrap();
    for b in &mut db[1000..1008] {
        *b ^= 0xff;
    }
    std::fs::write(broken.join("node.db"), &db).unwrap();
    std::fs::write(
        broken.join("manifest.toml"),
        with_checksum_of(&manifest, &db),
    )
    .unwrap();
    let err = refused(&site.nsdb(&["restore", "--yes", broken.to_str().unwrap()]));
    assert!(
        err.contains(&format!("{} is damaged", broken.join("node.db").display()))
            && err.contains("use another backup")
            && err.contains("nothing was replaced"),
        "{err}"
    );
    assert!(!err.contains("鍵が違う"), "{err}");
    ok(&site.nsdb(&["restore", "--yes", backup.to_str().unwrap()]));
    ok(&site.nsdb(&["doctor"]));
}

/// Under the service layout, restore runs as root while the data directory belongs to the
/// service's user: what it writes is that user's, mode 600. A node.db of root's left there
/// (copied by hand) is a FIX for doctor with the exact command, and serve, run as the service's
/// user, refuses with the same command; once it is run, the node serves as that user.
#[test]
fn a_restore_as_root_gives_the_database_to_the_data_directory_owner_and_doctor_checks_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var("CI").is_err(), "needs root in CI");
        eprintln!("skipped: needs root to own files as another user");
        return;
    }
    const SERVICE: u32 = 65534;
    let site = Site::new();
    ok(&site.add_user("dr-owned"));
    let backup = site.path("backup-owned");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let give =
        |path: &std::path::Path| std::os::unix::fs::chown(path, Some(SERVICE), Some(SERVICE));
    // The service layout: the data directory, its files and the key are the service user's.
    for entry in std::fs::read_dir(site.path("data")).unwrap() {
        give(&entry.unwrap().path()).unwrap();
    }
    give(&site.path("data")).unwrap();
    give(&site.path("db.key")).unwrap();
    std::fs::set_permissions(site.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The backup's own file is readable by others: the restored copy must not be.
    std::fs::set_permissions(
        backup.join("node.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::remove_file(site.path("data/identity.key")).unwrap();

    ok(&site.nsdb(&["restore", "--yes", backup.to_str().unwrap()]));
    for name in ["node.db", "identity.key"] {
        let meta = std::fs::metadata(site.path(&format!("data/{name}"))).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (SERVICE, SERVICE), "{name}");
        assert_eq!(meta.mode() & 0o777, 0o600, "{name}");
    }
    let out = ok(&site.nsdb(&["doctor"]));
    assert!(
        doctor_line(&out, "database files").starts_with("ok"),
        "{out}"
    );

    // A copy made by hand as root: root's, readable by others.
    let db = site.path("data/node.db");
    std::os::unix::fs::chown(&db, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = site.nsdb(&["doctor"]);
    refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    let line = doctor_line(&said, "database files");
    assert!(line.starts_with("FIX"), "{line}");
    let command = line
        .split_once("as root run ")
        .unwrap_or_else(|| panic!("no command in {line}"))
        .1
        .to_string();
    assert!(
        command.starts_with("chown ")
            && command.contains(&format!("{} && chmod 600 {}", db.display(), db.display())),
        "{command}"
    );
    let err = refused_within(&site, &["serve"], Some(SERVICE));
    assert!(
        err.contains(&command),
        "serve says another command than doctor:\n{err}\n{command}"
    );

    // The command given, run, lets the service's user serve.
    let run = Command::new("sh").arg("-c").arg(&command).status().unwrap();
    assert!(run.success(), "{command}");
    ok(&site.nsdb(&["doctor"]));
    let server = Command::new(NSDB)
        .args(["serve", "--config"])
        .arg(site.config())
        .uid(SERVICE)
        .gid(SERVICE)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut answered = false;
    for _ in 0..200 {
        if http(site.port, "GET", "/api/v1/health", None, "").is_some() {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(server);
    assert!(answered, "the node serves as the service's user");
}

/// After an interrupted rekey (the database switched to the new key, the key file not yet),
/// doctor and backup say what serve says: which key file opens it, and --recover.
#[test]
fn after_an_interrupted_rekey_doctor_and_backup_say_what_serve_says() {
    let site = Site::new();
    ok(&site.add_user("dr-rekey"));
    let config = nsdb::NodeConfig::from_file(&site.config()).unwrap();
    let current = nsdb::store::DbKey::from_hex(&"5a".repeat(32)).unwrap();
    let next = nsdb::store::DbKey::from_bytes([0x79; 32]);
    nsdb::ops::rekey::stage(&config, &current, &next).unwrap();
    nsdb::ops::rekey::switch_database(&config).unwrap();

    let advice = |said: &str| -> String {
        let at = said
            .find("cannot open database")
            .unwrap_or_else(|| panic!("no advice in {said}"));
        let advice = said[at..].lines().next().unwrap().trim().to_string();
        assert!(
            advice.contains("db.key.new") && advice.contains("--recover"),
            "{advice}"
        );
        advice
    };
    let serve = advice(&refused_within(&site, &["serve"], None));
    let out = site.nsdb(&["doctor"]);
    refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    let line = doctor_line(&said, "database");
    assert!(line.starts_with("FIX"), "{line}");
    assert_eq!(advice(&line), serve);
    assert!(!said.contains("key is wrong"), "{said}");
    let dest = site.path("backup-during-rekey");
    let err = refused(&site.nsdb(&["backup", dest.to_str().unwrap()]));
    assert_eq!(advice(&err), serve);
    assert!(!err.contains("key is wrong"), "{err}");
    assert!(!dest.exists());

    let out = ok(&site.nsdb(&["rekey", "--recover"]));
    assert!(out.contains("opened with the new key"), "{out}");
    ok(&site.nsdb(&["doctor"]));
}

/// A mistyped data_dir is a FIX: only nsdb init creates a node (serve refuses), so doctor
/// never says one will be created on first start.
#[test]
fn doctor_says_a_missing_data_directory_needs_init_or_a_corrected_data_dir() {
    let site = Site::new();
    ok(&site.add_user("dr-typo"));
    let config = std::fs::read_to_string(site.config())
        .unwrap()
        .replace("data_dir = \"data\"", "data_dir = \"dta\"");
    std::fs::write(site.config(), config).unwrap();
    let out = site.nsdb(&["doctor"]);
    refused(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    let line = doctor_line(&said, "data directory");
    assert!(line.starts_with("FIX"), "{line}");
    assert!(
        line.contains(&format!("{} does not exist", site.path("dta").display())),
        "{line}"
    );
    assert!(
        line.contains(&format!("nsdb init --config {}", site.config().display())),
        "{line}"
    );
    assert!(line.contains("mistyped"), "{line}");
    assert!(!said.contains("first start"), "{said}");
    assert!(!site.path("dta").exists(), "doctor created nothing");
}

/// Backup refuses a destination whose parent does not exist (an unmounted share) and one
/// inside the data directory, creating nothing; a backup that fails leaves nothing behind.
#[test]
fn backup_refuses_a_missing_parent_or_the_data_directory_and_a_failed_one_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    ok(&site.add_user("dr-dest"));
    let unmounted = site.path("share/nsdb/2026-11-30");
    let err = refused(&site.nsdb(&["backup", unmounted.to_str().unwrap()]));
    assert!(
        err.contains(&format!(
            "{} does not exist",
            site.path("share/nsdb").display()
        )) && err.contains("mount or create it first"),
        "{err}"
    );
    assert!(!site.path("share").exists(), "created the missing folders");

    let inside = site.path("data/backups");
    let err = refused(&site.nsdb(&["backup", inside.to_str().unwrap()]));
    assert!(err.contains("inside the node's data directory"), "{err}");
    assert!(!inside.exists());

    // A failure of another kind (the key file now holds another key): nothing left either;
    // an empty directory given stays, empty.
    let key = site.path("db.key");
    std::fs::write(&key, "5b".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dest = site.path("backup-new");
    refused(&site.nsdb(&["backup", dest.to_str().unwrap()]));
    assert!(!dest.exists(), "a failed backup left {}", dest.display());
    let given = site.path("backup-given");
    std::fs::create_dir(&given).unwrap();
    refused(&site.nsdb(&["backup", given.to_str().unwrap()]));
    assert_eq!(std::fs::read_dir(&given).unwrap().count(), 0);
    std::fs::write(&key, "5a".repeat(32)).unwrap();
    ok(&site.nsdb(&["backup", dest.to_str().unwrap()]));
    assert!(dest.join("manifest.toml").exists());
}

/// A backup's node.db put in place by hand (same key) still carries the backup's table of
/// files: later backups work, and a restore leaves no backup-only table in the node's database.
#[test]
fn backup_works_on_a_database_that_was_a_backups_copy_and_restore_leaves_no_backup_table() {
    let site = Site::new();
    ok(&site.add_user("dr-copy"));
    let first = site.path("backup-1");
    ok(&site.nsdb(&["backup", first.to_str().unwrap()]));
    for f in ["node.db-wal", "node.db-shm"] {
        let _ = std::fs::remove_file(site.path("data").join(f));
    }
    std::fs::copy(first.join("node.db"), site.path("data/node.db")).unwrap();
    let second = site.path("backup-2");
    let out = ok(&site.nsdb(&["backup", second.to_str().unwrap()]));
    assert!(out.contains("identity.key"), "{out}");
    ok(&site.nsdb(&["restore", "--yes", second.to_str().unwrap()]));
    let key = nsdb::store::DbKey::from_hex(&"5a".repeat(32)).unwrap();
    let c = nsdb::store::connect(
        &site.path("data/node.db"),
        Some(&key),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'backup_files'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "a backup-only table left in the node's database");
    drop(c);
    let server = site.serve();
    assert!(site.login("dr-copy").is_some());
    stop(server);
}

/// A restore onto a fresh machine leaves the marker a set-up node has: a database that goes
/// missing afterwards is refused by serve and init, which say to restore.
#[test]
fn a_restore_on_a_fresh_machine_leaves_the_marker_so_a_lost_database_is_never_started_empty() {
    let site = Site::new();
    ok(&site.add_user("dr-marker"));
    let backup = site.path("backup");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let marker = std::fs::read_to_string(site.path("data/node.db.owner")).unwrap();
    std::fs::remove_dir_all(site.path("data")).unwrap();
    ok(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert_eq!(
        std::fs::read_to_string(site.path("data/node.db.owner")).unwrap(),
        marker
    );
    std::fs::rename(site.path("data/node.db"), site.path("node.db.away")).unwrap();
    let err = refused_within(&site, &["serve"], None);
    assert!(err.contains("restore it from a backup"), "{err}");
    let err = refused(&site.nsdb(&["init"]));
    assert!(err.contains("restore it from a backup"), "{err}");
    assert!(!site.path("data/node.db").exists(), "init made a database");
}

/// provision node-key and enroll refuse a data directory that does not exist, creating nothing.
#[test]
fn provision_node_key_and_enroll_refuse_a_missing_data_directory() {
    let site = Site::new();
    let typo = site.path("dta");
    for args in [
        vec!["provision", "node-key", "--data", typo.to_str().unwrap()],
        vec![
            "provision",
            "enroll",
            "--data",
            typo.to_str().unwrap(),
            "--enrollment",
            site.path("enrollment.toml").to_str().unwrap(),
        ],
    ] {
        let err = refused(&Command::new(NSDB).args(&args).output().unwrap());
        assert!(
            err.contains("does not exist") && err.contains("nsdb init --config"),
            "{err}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

/// A directory where node.db should be: serve says what doctor says (a directory, mv), not a
/// wrong mode.
#[test]
fn serve_says_a_database_that_is_a_directory_is_a_directory() {
    let site = Site::new();
    ok(&site.add_user("dr-dir"));
    for f in ["node.db", "node.db-wal", "node.db-shm"] {
        let _ = std::fs::remove_file(site.path("data").join(f));
    }
    std::fs::create_dir(site.path("data/node.db")).unwrap();
    let err = refused_within(&site, &["serve"], None);
    assert!(
        err.contains("is a directory") && err.contains("mv ") && !err.contains("chmod"),
        "{err}"
    );
    let said = String::from_utf8_lossy(&site.nsdb(&["doctor"]).stdout).into_owned();
    assert!(said.contains("is a directory"), "{said}");
}

/// A backup to a disk without room, and a restore onto a full data disk, name the path and the
/// room needed and leave nothing behind; the next backup there is not refused for leftovers.
#[test]
fn backup_and_restore_without_room_say_so_and_leave_nothing() {
    let site = Site::new();
    ok(&site.add_user("dr-room"));
    let backup = site.path("backup");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let db_bytes = std::fs::metadata(backup.join("node.db")).unwrap().len();
    let full = site.path("full");
    // Room for the database, not for SQLite's files beside it.
    let size = format!("{}k", db_bytes / 1024 + 8);
    let Some(_fs) = Tmpfs::mount(&full, &size) else {
        return;
    };
    let dest = full.join("b");
    let err = refused(&site.nsdb(&["backup", dest.to_str().unwrap()]));
    assert!(
        err.contains(&dest.display().to_string()) && err.contains("bytes free"),
        "{err}"
    );
    assert!(!dest.exists(), "a failed backup left {}", dest.display());
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 0);

    // A restore onto a full data disk (a node that lost its disk, on a small new one).
    std::fs::remove_dir_all(site.path("data")).unwrap();
    let data = site.path("data");
    let Some(_data_fs) = Tmpfs::mount(&data, "64k") else {
        return;
    };
    let err = refused(&site.nsdb(&["restore", backup.to_str().unwrap()]));
    assert!(
        err.contains(&data.display().to_string()) && err.contains("bytes free"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "serve.lock")
        .collect();
    assert!(left.is_empty(), "a failed restore left {left:?}");
}

/// On a damaged node that is not enrolled, restore does not advise a backup nsdb backup would
/// refuse; after a restore no advice to back up the replaced database is printed.
#[test]
fn restore_on_a_damaged_node_advises_only_what_can_be_done() {
    let site = Site::new();
    ok(&site.add_user("dr-advice"));
    let backup = site.path("backup");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let out = site.nsdb(&["restore", "--yes", backup.to_str().unwrap()]);
    let said = ok(&out) + &String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("back it up first"), "{said}");
    // Sheets the hub never saw, then damage to a page.
    let server = site.serve();
    let token = site.login("dr-advice").unwrap();
    create_sheet(site.port, &token, "助言 試験");
    stop(server);
    damage_page(&site, 3);
    let out = site.nsdb(&["restore", backup.to_str().unwrap()]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("(nsdb backup)") && !said.contains("back it up first"),
        "{said}"
    );
    if !out.status.success() {
        assert!(said.contains("--yes"), "{said}");
    }
}

/// A restore that refuses on a mistyped data_dir leaves no directory behind.
#[test]
fn a_refused_restore_on_a_mistyped_data_dir_leaves_nothing() {
    let site = Site::new();
    ok(&site.add_user("dr-typo"));
    let backup = site.path("backup");
    ok(&site.nsdb(&["backup", backup.to_str().unwrap()]));
    let text = std::fs::read_to_string(site.config())
        .unwrap()
        .replace("data_dir = \"data\"", "data_dir = \"dta\"");
    std::fs::write(site.config(), text).unwrap();
    // An incomplete backup directory given by mistake: refused.
    let empty = site.path("not-a-backup");
    std::fs::create_dir(&empty).unwrap();
    let err = refused(&site.nsdb(&["restore", empty.to_str().unwrap()]));
    assert!(err.contains("incomplete"), "{err}");
    assert!(
        !site.path("dta").exists(),
        "left {}",
        site.path("dta").display()
    );
}
