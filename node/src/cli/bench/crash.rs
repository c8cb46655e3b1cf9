//! `nsdb bench crash`: is every acknowledged save still there after the node is killed?
//!
//! One hospital node runs as its own process (`nsdb serve`, this binary); this process is the
//! writer: it signs in through the API and creates sheets as fast as the node answers,
//! recording every save the node acknowledged (201). At a random moment the node is killed
//! with SIGKILL. The database is then opened as a restart would open it (the WAL recovered),
//! and every acknowledged sheet must be there with the name it was saved with; the database
//! must pass `cipher_integrity_check` and `integrity_check`, and the audit chain must verify.
//! The next trial starts the node again on the same database. Reported: trials, acknowledged
//! writes, lost writes (target: 0), damaged databases (target: 0).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{OpenFlags, OptionalExtension};

use super::Figure;
use crate::store::{DbKey, connect};

/// Options of the crash scenario.
#[derive(Debug, Clone, Copy)]
pub struct CrashBench {
    /// Kills of the node, each followed by a check of what was acknowledged.
    pub trials: usize,
}

const PASSWORD: &str = "kill-nine-forty-times";

/// What one trial found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Trial {
    pub acknowledged: usize,
    pub lost: usize,
    pub damaged: bool,
}

/// Runs `opts.trials` kills; figures: trials, acknowledged writes, lost writes, damaged
/// databases. Errors: the node could not be set up or did not come up within a minute.
pub async fn crash(opts: CrashBench) -> anyhow::Result<Vec<Figure>> {
    tokio::task::spawn_blocking(move || run(opts))
        .await
        .context("the crash benchmark stopped")?
}

fn run(opts: CrashBench) -> anyhow::Result<Vec<Figure>> {
    let exe = std::env::current_exe().context("this binary's path")?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let key_hex = hex::encode(rand::random::<[u8; 32]>());
    let key_file = dir.path().join("db.key");
    std::fs::write(&key_file, &key_hex)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"bench-crash\"\nrole = \"hospital\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\nkey_file = \"db.key\"\nmetrics_listen = \"off\"\nintegrity_check_hours = 0\n\n[institution]\ncode = \"1399000099\"\nname = \"ベンチ病院\"\n"
        ),
    )?;
    let init = Command::new(&exe)
        .args(["init", "--config"])
        .arg(&config)
        .output()?;
    anyhow::ensure!(
        init.status.success(),
        "nsdb init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let added = Command::new(&exe)
        .args(["user", "add", "--config"])
        .arg(&config)
        .args([
            "--login",
            "bench",
            "--name",
            "ベンチ 医師",
            "--kind",
            "nanbyo_doctor",
            "--no-change-required",
        ])
        .env("NSDB_PASSWORD", PASSWORD)
        .output()?;
    anyhow::ensure!(
        added.status.success(),
        "nsdb user add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let key = DbKey::from_hex(&key_hex).context("the generated key")?;
    let db = dir.path().join("data/node.db");
    let mut trials = Vec::new();
    for n in 0..opts.trials.max(1) {
        let t = trial(&exe, &config, port, &db, &key, n)?;
        eprintln!(
            "trial {}: {} acknowledged, {} lost{}",
            n + 1,
            t.acknowledged,
            t.lost,
            if t.damaged { ", DAMAGED" } else { "" }
        );
        trials.push(t);
    }
    let total = |f: fn(&Trial) -> f64| trials.iter().map(f).sum::<f64>();
    let one = |metric: &str, unit: &str, v: f64| Figure::from_runs("crash", metric, unit, &[v]);
    Ok(vec![
        one("trials", "kills", trials.len() as f64),
        one(
            "acknowledged writes",
            "sheets",
            total(|t| t.acknowledged as f64),
        ),
        one("lost writes", "sheets", total(|t| t.lost as f64)),
        one(
            "damaged databases",
            "trials",
            total(|t| f64::from(u8::from(t.damaged))),
        ),
        Figure::from_runs(
            "crash",
            "acknowledged per trial",
            "sheets",
            &trials
                .iter()
                .map(|t| t.acknowledged as f64)
                .collect::<Vec<_>>(),
        ),
    ])
}

/// Starts the node, writes until it is killed at a random moment, and checks the database.
fn trial(
    exe: &Path,
    config: &Path,
    port: u16,
    db: &Path,
    key: &DbKey,
    n: usize,
) -> anyhow::Result<Trial> {
    let mut node = Command::new(exe)
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nsdb serve")?;
    let token = match sign_in(port) {
        Ok(t) => t,
        Err(e) => {
            kill(&mut node);
            return Err(e);
        }
    };
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let name = format!("クラッシュ 試験{n}の{i}");
                let body =
                    serde_json::json!({"form_id": "rinko-006", "items": {"patient.name": name}})
                        .to_string();
                match request(port, "POST", "/api/v1/sheets", Some(&token), &body) {
                    Ok((201, answer)) => {
                        let id = serde_json::from_str::<serde_json::Value>(&answer)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_string));
                        if let (Some(id), Ok(mut a)) = (id, acknowledged.lock()) {
                            a.push((id, name));
                        }
                    }
                    // The node is gone (killed): nothing was acknowledged.
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(rand::random_range(300..1500)));
    kill(&mut node);
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let acknowledged = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    check(db, key, &acknowledged)
}

/// Opens the database as a restart would and compares it with what was acknowledged.
fn check(db: &Path, key: &DbKey, acknowledged: &[(String, String)]) -> anyhow::Result<Trial> {
    let conn = connect(db, Some(key), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let mut lost = 0;
    for (id, name) in acknowledged {
        let stored: Option<Option<String>> = conn
            .query_row("SELECT name FROM sheets WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if stored.flatten().as_deref() != Some(name.as_str()) {
            lost += 1;
        }
    }
    let damaged =
        !crate::ops::integrity_problems(&conn)?.is_empty() || crate::audit::verify(&conn)?.is_err();
    Ok(Trial {
        acknowledged: acknowledged.len(),
        lost,
        damaged,
    })
}

fn kill(node: &mut Child) {
    let _ = node.kill(); // SIGKILL
    let _ = node.wait();
}

/// Signs in as the bench user once the node answers; its bearer token.
fn sign_in(port: u16) -> anyhow::Result<String> {
    let started = Instant::now();
    let body = serde_json::json!({"login": "bench", "password": PASSWORD}).to_string();
    loop {
        if let Ok((201, answer)) = request(port, "POST", "/api/v1/session", None, &body) {
            let v: serde_json::Value = serde_json::from_str(&answer)?;
            return v["token"]
                .as_str()
                .map(str::to_string)
                .context("no token in the sign-in answer");
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the node did not answer on 127.0.0.1:{port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request on its own connection; the status and body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
