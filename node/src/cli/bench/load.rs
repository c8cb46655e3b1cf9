//! `nsdb bench load`: many signed-in users on one hospital node, over real HTTP on loopback.
//!
//! The node runs as its own process (`nsdb serve`, this binary) on a database prepared here
//! with `--sheets` fictitious sheets and `--users` doctors, each signed in and with a draft of
//! their own. This process is the load generator, so the node's figures include none of its
//! work but share the machine's cores with it (state that with the figures).
//!
//! (a) The day's mix: every user acts every 2 s for `--seconds`: the list (30 %), a search by
//! kana (15 %), the editor (20 %), a save through the API (20 %), the judgment (一次判定, 10 %)
//! and the print (5 %). Reported per action: p50 and p99 in ms, and errors (any answer not 2xx,
//! or no answer). Afterwards every user's last acknowledged save must be in the sheet.
//! (b) Saturation: the same mix offered open-loop at rising rates (25, 50, 100, 200, 400, 800
//! requests/s, 10 s each) until the p99 passes 500 ms or errors appear; reported: the highest
//! rate whose p99 stayed under 500 ms, and the throughput achieved there.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Mutex;

use super::Figure;
use crate::accounts::policy::UserKind;
use crate::accounts::{NewUser, create_user, hash_password};
use crate::config::NodeRole;

/// Options of the load scenario.
#[derive(Debug, Clone, Copy)]
pub struct LoadBench {
    pub users: usize,
    pub sheets: usize,
    pub seconds: u64,
    /// Run the saturation steps too.
    pub saturation: bool,
}

/// What a user does, with its share of the mix (percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    List,
    Search,
    Editor,
    Save,
    Judgment,
    Print,
}

const MIX: &[(Action, u32)] = &[
    (Action::List, 30),
    (Action::Search, 15),
    (Action::Editor, 20),
    (Action::Save, 20),
    (Action::Judgment, 10),
    (Action::Print, 5),
];

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Search => "search",
            Action::Editor => "editor",
            Action::Save => "save",
            Action::Judgment => "judgment",
            Action::Print => "print",
        }
    }

    fn draw() -> Action {
        let mut roll = rand::random_range(0..100u32);
        for (a, share) in MIX {
            if roll < *share {
                return *a;
            }
            roll -= share;
        }
        Action::List
    }
}

/// Family-name kana prefixes of the fictitious patients (`cli::seed`), for the search.
const SEARCHES: &[&str] = &["アオ", "イシ", "カシ", "ツダ", "セオ", "クガ"];

/// A signed-in user: the session token (cookie for screens, bearer for the API) and a draft.
#[derive(Clone)]
struct User {
    token: String,
    sheet: String,
}

/// One answered (or failed) request.
struct Sample {
    action: Action,
    ms: f64,
    ok: bool,
}

/// The last value each user's save was acknowledged with (sheet id → address).
type Saved = Arc<Mutex<BTreeMap<String, String>>>;

/// Runs the scenario. Errors: the node could not be prepared or did not come up.
pub async fn load(opts: LoadBench) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let users = prepare(dir.path(), port, opts).await?;
    let config = dir.path().join("node.toml");
    let mut node = Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nsdb serve")?;
    let result = drive(port, &users, opts).await;
    stop(&mut node);
    result
}

async fn drive(port: u16, users: &[User], opts: LoadBench) -> anyhow::Result<Vec<Figure>> {
    // A redirect (to /login) is an error here, never a success.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(opts.users)
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&client, &base).await?;

    // (a) The day's mix.
    let saved: Saved = Arc::default();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(opts.seconds);
    let mut tasks = Vec::new();
    for (i, user) in users.iter().cloned().enumerate() {
        let (client, base, saved, samples) =
            (client.clone(), base.clone(), saved.clone(), samples.clone());
        tasks.push(tokio::spawn(async move {
            // Users start spread over the first period, as they would.
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..2000))).await;
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            let mut n = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                n += 1;
                let action = Action::draw();
                let sample = act(&client, &base, &user, action, &saved, i, n).await;
                samples.lock().await.push(sample);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let samples = std::mem::take(&mut *samples.lock().await);
    let mut figures = summarise("load", &samples);
    figures.push(lost_saves(&client, &base, users, &saved).await?);

    // (b) Saturation, open loop.
    if opts.saturation {
        let mut best: Option<(f64, f64)> = None;
        for rate in [25u32, 50, 100, 200, 400, 800] {
            let (p99, errors, achieved) = offered(&client, &base, users, &saved, rate).await;
            eprintln!(
                "offered {rate}/s: achieved {achieved:.0}/s, p99 {p99:.0} ms, {errors} errors"
            );
            if p99 > 500.0 || errors > 0 {
                break;
            }
            best = Some((f64::from(rate), achieved));
        }
        let (rate, achieved) = best.unwrap_or((0.0, 0.0));
        figures.push(Figure::from_runs(
            "load",
            "saturation (p99 < 500 ms)",
            "req/s",
            &[rate],
        ));
        figures.push(Figure::from_runs(
            "load",
            "achieved at saturation",
            "req/s",
            &[achieved],
        ));
    }
    Ok(figures)
}

/// Offers the mix at `rate` requests per second for 10 s; p99 (ms), errors, achieved rate.
async fn offered(
    client: &reqwest::Client,
    base: &str,
    users: &[User],
    saved: &Saved,
    rate: u32,
) -> (f64, usize, f64) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = Vec::new();
    let total = rate as usize * 10;
    for n in 0..total {
        tick.tick().await;
        let i = n % users.len();
        let (client, base, user, saved, samples) = (
            client.clone(),
            base.to_string(),
            users[i].clone(),
            saved.clone(),
            samples.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let s = act(&client, &base, &user, Action::draw(), &saved, i, n as u64).await;
            samples.lock().await.push(s);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *samples.lock().await);
    let errors = samples.iter().filter(|s| !s.ok).count();
    let ms: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    (percentile(ms, 0.99), errors, total as f64 / elapsed)
}

/// One action of one user, timed.
async fn act(
    client: &reqwest::Client,
    base: &str,
    user: &User,
    action: Action,
    saved: &Saved,
    who: usize,
    n: u64,
) -> Sample {
    let cookie = format!(
        "{}={}",
        crate::http::shared::session::SESSION_COOKIE,
        user.token
    );
    let get = |path: String| {
        client
            .get(format!("{base}{path}"))
            .header(reqwest::header::COOKIE, cookie.clone())
    };
    let started = Instant::now();
    let ok = match action {
        Action::List => send(get("/sheets".into())).await,
        Action::Search => {
            let q = SEARCHES[rand::random_range(0..SEARCHES.len())];
            send(get(format!("/sheets?q={}", urlencode(q)))).await
        }
        Action::Editor => send(get(format!("/sheets/{}/edit", user.sheet))).await,
        Action::Judgment => send(get(format!("/sheets/{}/judgment", user.sheet))).await,
        Action::Print => send(get(format!("/sheets/{}/print", user.sheet))).await,
        Action::Save => {
            // The version is read first, as the editor page carries it; only the PUT is timed.
            let version = match version_of(client, base, user).await {
                Some(v) => v,
                None => {
                    return Sample {
                        action,
                        ms: started.elapsed().as_secs_f64() * 1000.0,
                        ok: false,
                    };
                }
            };
            let address = format!("東京都千代田区負荷町{who}-{n}");
            let body =
                serde_json::json!({"version": version, "items": {"patient.address": address}});
            let started = Instant::now();
            let ok = client
                .put(format!("{base}/api/v1/sheets/{}", user.sheet))
                .bearer_auth(&user.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if ok {
                saved.lock().await.insert(user.sheet.clone(), address);
            }
            return Sample { action, ms, ok };
        }
    };
    Sample {
        action,
        ms: started.elapsed().as_secs_f64() * 1000.0,
        ok,
    }
}

/// Sends and reads the whole answer; whether it was 2xx.
async fn send(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            r.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

async fn version_of(
    client: &reqwest::Client,
    base: &str,
    user: &User,
) -> Option<serde_json::Value> {
    let r = client
        .get(format!("{base}/api/v1/sheets/{}", user.sheet))
        .bearer_auth(&user.token)
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.ok()?).ok()?;
    Some(v["version"].clone())
}

/// Saves acknowledged whose value is not in the sheet afterwards (target 0).
async fn lost_saves(
    client: &reqwest::Client,
    base: &str,
    users: &[User],
    saved: &Saved,
) -> anyhow::Result<Figure> {
    let saved = saved.lock().await.clone();
    let mut lost = 0usize;
    for user in users {
        let Some(expected) = saved.get(&user.sheet) else {
            continue;
        };
        let r = client
            .get(format!("{base}/api/v1/sheets/{}", user.sheet))
            .bearer_auth(&user.token)
            .send()
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await?)?;
        if v["items"]["patient.address"].as_str() != Some(expected.as_str()) {
            lost += 1;
        }
    }
    Ok(Figure::from_runs(
        "load",
        "acknowledged saves lost",
        "saves",
        &[lost as f64],
    ))
}

/// p50 and p99 (ms) and errors per action, and for all actions together.
fn summarise(bench: &str, samples: &[Sample]) -> Vec<Figure> {
    let mut by: BTreeMap<Action, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by.entry(s.action).or_default().push(s);
    }
    let mut out = Vec::new();
    let mut one = |name: &str, group: &[&Sample]| {
        let ms: Vec<f64> = group.iter().map(|s| s.ms).collect();
        let errors = group.iter().filter(|s| !s.ok).count();
        let n = group.len();
        for (metric, v, unit) in [
            (format!("{name} p50"), percentile(ms.clone(), 0.5), "ms"),
            (format!("{name} p99"), percentile(ms.clone(), 0.99), "ms"),
            (format!("{name} requests"), n as f64, "requests"),
            (format!("{name} errors"), errors as f64, "requests"),
        ] {
            out.push(Figure::from_runs(bench, &metric, unit, &[v]));
        }
    };
    for (action, group) in &by {
        one(action.name(), group);
    }
    let all: Vec<&Sample> = samples.iter().collect();
    one("all", &all);
    out
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let at = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[at]
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn wait_until_up(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/api/v1/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the node did not answer on {base} within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(node: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status();
    let _ = node.wait();
}

/// The database of the node under `dir` (the demo hospital's, listening on `port`): its
/// fictitious sheets, `opts.users` doctors signed in with a draft each; writes `dir/node.toml`.
async fn prepare(dir: &Path, port: u16, opts: LoadBench) -> anyhow::Result<Vec<User>> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let node = crate::cli::demo::open_node(dir, NodeRole::Hospital, addr, opts.sheets).await?;
    let institution = node.config.institution.clone();
    let form = node
        .catalogue
        .form("rinko-006")
        .context("the パーキンソン病 form")?
        .clone();
    // One Argon2 hash for every bench user (same password): preparing stays quick.
    let hash = hash_password(crate::cli::demo::DEMO_PASSWORD)?;
    let (n, code, now) = (opts.users, institution.code.clone(), node.clock.now_ms());
    node.store
        .write(move |c| {
            let tx = c.transaction()?;
            for i in 0..n {
                let login = format!("load-{i:04}");
                create_user(
                    &tx,
                    &NewUser {
                        login: &login,
                        name: "負荷 試験",
                        kind: UserKind::NanbyoDoctor,
                        institution: &code,
                        department: None,
                        password_hash: &hash,
                    },
                    now,
                )?;
            }
            tx.commit()?;
            Ok::<_, crate::Error>(())
        })
        .await?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let session = node
            .login(&format!("load-{i:04}"), crate::cli::demo::DEMO_PASSWORD)
            .await?;
        let values = crate::cli::seed::sheet_values(&form, &mut rng, node.clock.today_jst());
        let sheet = node
            .create_sheet(&session.principal, &form.id, &values)
            .await?;
        users.push(User {
            token: session.token,
            sheet: sheet.row.id,
        });
    }
    drop(node);
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "name = \"hospital\"\nrole = \"hospital\"\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"hospital\"\nkey_file = \"hospital/db.key\"\nmetrics_listen = \"off\"\nintegrity_check_hours = 0\n\n[institution]\ncode = \"{}\"\nname = \"{}\"\n",
            institution.code, institution.name
        ),
    )?;
    Ok(users)
}
