//! `nsdb demo`: a hub, a hospital and a municipality node in one process on loopback, with demo
//! users (password `demo`) and 300 fictitious sheets on the hospital, so a newcomer sees the
//! whole system with one command.
//!
//! Demo mode listens on loopback addresses only and refuses anything else: its passwords are
//! public. Each node has its own data directory, database key file and identity.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use nsdb_sync::{Author, Sheet};

use crate::accounts::policy::UserKind;
use crate::accounts::{NewUser, create_user, ensure_institution, hash_password};
use crate::config::{Institution, NodeConfig, NodeRole};
use crate::store::KeySource;
use crate::{Clock, Node};

/// The demo password of every demo user.
pub const DEMO_PASSWORD: &str = "demo";

/// How many fictitious sheets the hospital node starts with.
pub const DEMO_SHEETS: usize = 300;

/// One demo user: login, name, kind.
pub type DemoUser = (&'static str, &'static str, UserKind);

/// One node of the demo.
pub struct DemoNode {
    pub role: NodeRole,
    pub institution: Institution,
    pub users: &'static [DemoUser],
}

/// The three demo nodes, in start order.
pub fn demo_nodes() -> Vec<DemoNode> {
    vec![
        DemoNode {
            role: NodeRole::Hub,
            institution: Institution {
                code: "mhlw-demo".into(),
                name: "厚生労働省 難病対策課（デモ）".into(),
            },
            users: &[
                ("ministry", "厚労 一郎", UserKind::Ministry),
                ("paper", "入力 委子", UserKind::PaperEntry),
            ],
        },
        DemoNode {
            role: NodeRole::Hospital,
            institution: Institution {
                code: "1399000010".into(),
                name: "デモ総合病院".into(),
            },
            users: &[
                ("doctor", "鈴木 太郎", UserKind::NanbyoDoctor),
                ("clerk", "田中 花子", UserKind::Clerk),
                ("admin", "情報 管理", UserKind::Admin),
            ],
        },
        DemoNode {
            role: NodeRole::Municipality,
            institution: Institution {
                code: "139999".into(),
                name: "デモ都 保健医療局".into(),
            },
            users: &[
                ("reviewer", "審査 次郎", UserKind::Reviewer),
                ("muni-admin", "発行 三郎", UserKind::Admin),
            ],
        },
    ]
}

/// A clinic without a node of its own (M18): its institution and its users' accounts are on
/// the hub, which serves them the hospital screens for this clinic's sheets only.
pub struct DemoClinic {
    pub institution: Institution,
    pub users: &'static [DemoUser],
}

/// The demo's clinic on the hub (a fictitious 医療機関コード and name).
pub fn demo_clinic() -> DemoClinic {
    DemoClinic {
        institution: Institution {
            code: "1399000028".into(),
            name: "デモ内科クリニック".into(),
        },
        users: &[
            ("clinic", "山本 一郎", UserKind::NanbyoDoctor),
            ("clinic-clerk", "小林 春子", UserKind::Clerk),
        ],
    }
}

/// Checks that an address is loopback, as demo mode requires.
pub fn require_loopback(ip: IpAddr) -> anyhow::Result<()> {
    if !ip.is_loopback() {
        bail!(
            "demo mode listens on loopback addresses only (127.0.0.1 or ::1), not {ip}: its passwords are public"
        );
    }
    Ok(())
}

/// The configuration of one demo node under `data`.
pub fn config(data: &Path, n: &DemoNode, addr: SocketAddr) -> anyhow::Result<NodeConfig> {
    let name = n.role.as_str();
    let dir = data.join(name);
    let key_file = dir.join("db.key");
    nsdb_provisioning::create_db_key_file(&key_file)
        .with_context(|| format!("database key of the {name} node"))?;
    Ok(NodeConfig {
        name: name.into(),
        role: n.role,
        listen: addr,
        data_dir: dir,
        key: KeySource::File(key_file),
        institution: n.institution.clone(),
        rules: None,
        // The demo serves each node's metrics beside its UI (see `run`); tests and benchmarks
        // open nodes without a metrics listener.
        metrics_listen: None,
        tls: None,
        // Demo, tests and benchmarks check at start only; `nsdb serve` rechecks on schedule.
        integrity_check_every: None,
        min_free_bytes: crate::ops::space::DEFAULT_MIN_FREE_MIB << 20,
        print_fallback_font: crate::config::FallbackFont::Default,
        trusted_proxies: Vec::new(),
    })
}

/// Opens the demo node of `role` in `data` (listening address `addr` in its configuration),
/// with the demo institution and users and, on a hospital, `sheets` fictitious sheets. The
/// benchmarks and the test support start their nodes with it.
pub async fn open_node(
    data: &Path,
    role: NodeRole,
    addr: SocketAddr,
    sheets: usize,
) -> anyhow::Result<Arc<Node>> {
    let spec = demo_nodes()
        .into_iter()
        .find(|n| n.role == role)
        .context("a demo node of every role")?;
    open_node_as(data, &spec, addr, sheets).await
}

/// [`open_node`] for a node described by `spec` (another institution with the demo users of
/// its role, for tests with several hospitals or municipalities).
pub async fn open_node_as(
    data: &Path,
    spec: &DemoNode,
    addr: SocketAddr,
    sheets: usize,
) -> anyhow::Result<Arc<Node>> {
    let node = Node::open(config(data, spec, addr)?, Clock::System)?;
    seed(&node, spec, sheets).await?;
    Ok(node)
}

/// Adds the demo institution, users and (on the hospital) sheets, once; on the hub also the
/// demo clinic and its users ([`demo_clinic`]). Marks the node as one where the second factor
/// is optional for every kind of user.
pub async fn seed(node: &Arc<Node>, n: &DemoNode, sheets: usize) -> anyhow::Result<()> {
    // Demo nodes ask nobody for the second factor by rule, so every demo user signs in with
    // the documented password; anyone may still enrol from 2段階認証の設定 (docs/security.md).
    node.store
        .write(|c| crate::accounts::totp::make_optional_here(c).map_err(crate::Error::from))
        .await?;
    let seeded: bool = node
        .store
        .read(|c| {
            Ok::<_, crate::Error>(
                c.query_row(
                    "SELECT count(*) FROM node_meta WHERE key = 'demo_seeded'",
                    [],
                    |r| r.get::<_, i64>(0),
                )? > 0,
            )
        })
        .await?;
    if seeded {
        return Ok(());
    }
    let hash = hash_password(DEMO_PASSWORD)?;
    let (inst, kind, users) = (n.institution.clone(), n.role.institution_kind(), n.users);
    let clinic = (n.role == NodeRole::Hub).then(demo_clinic);
    let now = node.clock.now_ms();
    let doctor_id = node
        .store
        .write(move |c| {
            let tx = c.transaction()?;
            let mut places = vec![(inst, kind, users)];
            if let Some(clinic) = clinic {
                places.push((clinic.institution, "hospital", clinic.users));
            }
            let mut doctor = None;
            for (inst, kind, users) in places {
                ensure_institution(&tx, &inst.code, &inst.name, kind)?;
                for (login, name, kind) in users {
                    let id = create_user(
                        &tx,
                        &NewUser {
                            login,
                            name,
                            kind: *kind,
                            institution: &inst.code,
                            department: matches!(kind, UserKind::NanbyoDoctor)
                                .then_some("脳神経内科"),
                            password_hash: &hash,
                        },
                        now,
                    )?;
                    if kind.role() == crate::accounts::policy::Role::Doctor {
                        // A fictitious 指定医番号, prefilled into the doctor's sheets.
                        tx.execute(
                            "UPDATE users SET doctor_number = ?1 WHERE id = ?2",
                            rusqlite::params![format!("デモ{id:04}"), id as i64],
                        )?;
                        doctor.get_or_insert(id);
                    }
                }
            }
            tx.commit()?;
            Ok::<_, crate::Error>(doctor)
        })
        .await?;
    if let (NodeRole::Hospital, Some(doctor)) = (n.role, doctor_id) {
        let form = node
            .catalogue
            .form("rinko-006")
            .context("the demo needs form rinko-006")?
            .clone();
        let author = Author {
            node: node.node_id,
            user: doctor,
        };
        // Who writes the demo drafts, as the new-sheet screen fills it: the demo doctor (with
        // the 指定医番号 the account holds) at the demo hospital, so that they can be registered.
        let doctor_name = n
            .users
            .iter()
            .find(|(_, _, k)| k.role() == crate::accounts::policy::Role::Doctor)
            .map(|(_, name, _)| name.to_string())
            .unwrap_or_default();
        let identity: std::collections::BTreeMap<String, Option<String>> = [
            (crate::sheets::DOCTOR_NAME_ITEM, doctor_name),
            (
                crate::sheets::DOCTOR_NUMBER_ITEM,
                format!("デモ{doctor:04}"),
            ),
            ("doctor.institution_name", n.institution.name.clone()),
            ("doctor.institution_code", n.institution.code.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v)))
        .collect();
        let mut docs = crate::cli::seed::sheets(
            &form,
            sheets,
            20_261_125,
            &n.institution.code,
            author,
            now,
            node.clock.today_jst(),
        )
        .map(move |mut s| {
            let edit = nsdb_sync::Edit {
                author,
                at_ms: s.header().created_ms,
                message: "作成",
            };
            s.set_fields(&identity, edit);
            s
        });
        // A thousand sheets a transaction, so a large seed stays small in memory.
        loop {
            let batch: Vec<Sheet> = docs.by_ref().take(1000).collect();
            if batch.is_empty() {
                break;
            }
            node.store
                .write(move |c| {
                    let tx = c.transaction()?;
                    for mut s in batch {
                        let created = s.header().created_ms;
                        crate::sheets::store_sheet(&tx, &mut s, "screen", created)?;
                    }
                    tx.commit()?;
                    Ok::<_, crate::Error>(())
                })
                .await?;
        }
    }
    node.store
        .write(|c| {
            c.execute(
                "INSERT INTO node_meta (key, value) VALUES ('demo_seeded', '1')",
                [],
            )?;
            Ok::<_, crate::Error>(())
        })
        .await?;
    Ok(())
}

/// Options of `nsdb demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data: Option<PathBuf>,
    pub bind: IpAddr,
    pub port_base: u16,
}

/// Runs the demo until Ctrl-C.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    require_loopback(opts.bind)?;
    let (data, _temp) = match &opts.data {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new().prefix("nsdb-demo-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    println!("nsdb demo: data in {}", data.display());
    let mut servers = Vec::new();
    let mut detectors = Vec::new();
    let mut nodes = Vec::new();
    for (i, n) in demo_nodes().iter().enumerate() {
        let addr = SocketAddr::new(opts.bind, opts.port_base + i as u16);
        let config = config(&data, n, addr)?;
        let node = Node::open(config, Clock::System)?;
        seed(&node, n, DEMO_SHEETS).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (try --port-base)"))?;
        println!(
            "  {:<16} http://{addr}/   users: {}   (password: {DEMO_PASSWORD})",
            n.role.label(),
            n.users
                .iter()
                .map(|(l, _, k)| format!("{l} ({})", k.label()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        nodes.push(node.clone());
        detectors.push(crate::monitor::schedule(node.clone()));
        let metrics = SocketAddr::new([127, 0, 0, 1].into(), opts.port_base + 10 + i as u16);
        servers.push(crate::cli::serve::serve_metrics(node.clone(), metrics).await?);
        let app = crate::http::router(node).into_make_service_with_connect_info::<SocketAddr>();
        servers.push(tokio::spawn(
            async move { axum::serve(listener, app).await },
        ));
    }
    println!(
        "  2段階認証 (TOTP) is optional in the demo, also for 責任者 and 自治体職員; any user may enrol from 「2段階認証の設定」 with an authenticator app"
    );
    let sync_addr = SocketAddr::new(opts.bind, opts.port_base + 3);
    let _sync = crate::sync_service::start_demo(&nodes, sync_addr).await?;
    // The hospital leases its first key block from the hub before anyone can register there.
    if let Some(hospital) = nodes.iter().find(|n| n.role() == NodeRole::Hospital) {
        let own = hospital.node_id.to_string();
        for _ in 0..100 {
            let own = own.clone();
            let left = hospital
                .store
                .read(move |c| crate::keys::remaining(c, &own).map_err(crate::Error::from))
                .await?;
            if left > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    for node in &nodes {
        let path = write_node_config(&data, &node.config)?;
        if node.role() == NodeRole::Hub {
            println!(
                "  research at the hub from the command line: nsdb research stats --config {0}; nsdb research export --config {0} --out DIR (docs/research.md)",
                path.display()
            );
        }
    }
    let hub = nodes.iter().find(|n| n.role() == NodeRole::Hub);
    let hospital = nodes.iter().find(|n| n.role() == NodeRole::Hospital);
    if let (Some(hub), Some(hospital)) = (hub, hospital) {
        let command = demo_check_tool(&data, hospital, hub).await?;
        println!(
            "  一括登録: seal the sample XML with the check tool, then upload the .sealed files at 一括登録 as doctor (docs/check-tool.md):\n      {command}"
        );
    }
    if let Some(hospital) = nodes.iter().find(|n| n.role() == NodeRole::Hospital) {
        let keys = demo_registrations(hospital).await?;
        let hub = nodes.iter().find(|n| n.role() == NodeRole::Hub);
        let municipality = nodes.iter().find(|n| n.role() == NodeRole::Municipality);
        if let (Some(hub), Some(municipality)) = (hub, municipality) {
            match demo_research(hub, municipality, &keys).await {
                Ok(n) => println!(
                    "  研究・統計: the municipality's reviewer certified {n} of the sheets below with 研究利用の同意 (同意あり); the ministry sees their counts at /research on the hub"
                ),
                Err(e) => println!("  研究・統計: no consented demo sheet ({e:#})"),
            }
        }
        if !keys.is_empty() {
            println!(
                "  municipality: reviewer types a key and birth date at 受付一覧 (registered demo sheets):"
            );
            for (key, birth) in keys {
                println!("      アクセスキー {key}   生年月日 {birth}");
            }
        }
    }
    if let Some(hub) = nodes.iter().find(|n| n.role() == NodeRole::Hub) {
        let clinic = demo_clinic();
        let keys = demo_clinic_sheets(hub).await?;
        match demo_identified_access(hub).await {
            Ok(()) => println!(
                "  利用状況の監視: the ministry opened one clinic sheet with a reason; its alert is at /monitor on the hub (ministry)"
            ),
            Err(e) => println!("  利用状況の監視: no demo alert ({e:#})"),
        }
        println!(
            "  clinic on the hub ({} {}): users {} write, register and answer 照会 at the hub's address",
            clinic.institution.code,
            clinic.institution.name,
            clinic
                .users
                .iter()
                .map(|(l, _, k)| format!("{l} ({})", k.label()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (key, birth) in keys {
            println!(
                "      アクセスキー {key}   生年月日 {birth}   (the clinic's registered sheet)"
            );
        }
    }
    if let (Some(municipality), Some(hospital)) = (
        nodes.iter().find(|n| n.role() == NodeRole::Municipality),
        nodes.iter().find(|n| n.role() == NodeRole::Hospital),
    ) {
        match demo_doctor(municipality, &hospital.config.institution).await {
            Ok(Some((login, password))) => println!(
                "  指定医ID発行: muni-admin (the municipality's 責任者) issued {login} for {} at /admin/doctors; after the first sync it signs in at the hospital with the one-time password {password} (changed at first sign-in), and registers 兼務 at 自アカウント管理",
                hospital.config.institution.name
            ),
            Ok(None) => println!(
                "  指定医ID発行: muni-admin (the municipality's 責任者) issues designated doctors' IDs at /admin/doctors"
            ),
            Err(e) => println!("  指定医ID発行: no demo doctor ({e:#})"),
        }
    }
    if let Some(municipality) = nodes.iter().find(|n| n.role() == NodeRole::Municipality) {
        match demo_paper(municipality, &data).await {
            Ok(Some(xml)) => println!(
                "  paper path: one scanned paper sheet waits in the municipality's 受付一覧 (紙の臨個票受付); at the hub, user paper enters it at 紙臨個票入力 with the contractor's data file {}",
                xml.display()
            ),
            Ok(None) => {}
            Err(e) => println!("  paper path: no demo paper ({e:#})"),
        }
    }
    println!("  sync: the hub listens on {sync_addr} (QUIC); status at /sync on each node");
    println!(
        "  metrics: http://127.0.0.1:{}/metrics … :{} (Prometheus, loopback only)",
        opts.port_base + 10,
        opts.port_base + 12
    );
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    for s in servers {
        s.abort();
    }
    Ok(())
}

/// The demo's day raises one visible alert: once per data directory, the ministry opens one of
/// the demo clinic's sheets on the hub with a reason (the ministry's exceptional identified
/// access), which 利用状況の監視 shows on the hub.
async fn demo_identified_access(hub: &Arc<Node>) -> anyhow::Result<()> {
    use rusqlite::OptionalExtension;
    let code = demo_clinic().institution.code;
    let (done, sheet): (bool, Option<String>) = hub
        .store
        .read(move |c| {
            let done = c.query_row("SELECT count(*) > 0 FROM identified_access", [], |r| {
                r.get(0)
            })?;
            let sheet = c
                .query_row(
                    "SELECT id FROM sheets WHERE institution = ?1 ORDER BY created_at LIMIT 1",
                    [&code],
                    |r| r.get(0),
                )
                .optional()?;
            Ok::<_, crate::Error>((done, sheet))
        })
        .await?;
    if !done {
        let sheet = sheet.context("no clinic sheet on the hub")?;
        let ministry = hub.login("ministry", DEMO_PASSWORD).await?.principal;
        hub.open_identified(
            &ministry,
            &sheet,
            "デモ: 自治体からの照会に回答するため、記載内容を確認",
        )
        .await?;
    }
    hub.scan_audit().await?;
    Ok(())
}

/// Drafts the demo clinic's doctor starts on the hub.
const CLINIC_DRAFTS: usize = 3;

/// The demo clinic's sheets on the hub, made once per data directory as its doctor would make
/// them (新規作成, and 登録 with a key from a block the hub leases to itself): a few drafts and
/// one registered sheet. Returns the registered sheets' keys (as printed) and birth dates, for
/// the municipality's reviewer to type at 受付.
async fn demo_clinic_sheets(hub: &Arc<Node>) -> anyhow::Result<Vec<(String, String)>> {
    let clinic = demo_clinic();
    let code = clinic.institution.code.clone();
    let registered = |code: String| async move {
        hub.store
            .read(move |c| {
                let mut st =
                    c.prepare("SELECT access_key, birth_date FROM sheets WHERE institution = ?1")?;
                let rows = st
                    .query_map([code], |r| {
                        Ok((
                            r.get::<_, Option<String>>(0)?,
                            r.get::<_, Option<String>>(1)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, crate::Error>(rows)
            })
            .await
    };
    let mut rows = registered(code.clone()).await?;
    if rows.is_empty() {
        let doctor = hub.login("clinic", DEMO_PASSWORD).await?.principal;
        let form = hub
            .catalogue
            .form("rinko-006")
            .context("the demo needs form rinko-006")?
            .clone();
        let today = hub.clock.today_jst();
        let (mut drafts, mut done) = (0, false);
        for seed in 0..60u64 {
            if drafts >= CLINIC_DRAFTS && done {
                break;
            }
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(28_000 + seed);
            let values = crate::cli::seed::sheet_values(&form, &mut rng, today);
            let id = hub
                .create_sheet(&doctor, "rinko-006", &values)
                .await?
                .row
                .id;
            if !done {
                let step = crate::sheets::workflow::Step::Register;
                if hub.step(&doctor, &id, step).await.is_ok() {
                    done = true;
                    continue;
                }
            }
            drafts += 1;
        }
        rows = registered(code).await?;
    }
    Ok(rows
        .into_iter()
        .filter_map(|(k, b)| Some((k?, b?)))
        .map(|(k, b)| {
            let shown = crate::keys::AccessKey::shown(&k);
            (shown, b)
        })
        .collect())
}

/// A one-page PDF showing `lines` (ASCII) in Helvetica: the demo's stand-in for a scanned
/// paper sheet, and the tests'.
pub fn demo_pdf(lines: &[&str]) -> Vec<u8> {
    let mut text = String::from("BT /F1 14 Tf 72 770 Td 18 TL\n");
    for l in lines {
        let escaped: String = l
            .chars()
            .filter(char::is_ascii)
            .map(|c| match c {
                '(' | ')' | '\\' => format!("\\{c}"),
                c => c.to_string(),
            })
            .collect();
        text.push_str(&format!("({escaped}) Tj T*\n"));
    }
    text.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!("<< /Length {} >>\nstream\n{text}endstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The municipality's 責任者 (`muni-admin`) issues one designated doctor's ID for the demo
/// hospital, once per data directory: its ID and one-time password, or `None` when the demo
/// issued one before (its password is not kept).
async fn demo_doctor(
    municipality: &Arc<Node>,
    hospital: &Institution,
) -> anyhow::Result<Option<(String, String)>> {
    let admin = municipality
        .login("muni-admin", DEMO_PASSWORD)
        .await?
        .principal;
    if !municipality.issued_doctors(&admin).await?.is_empty() {
        return Ok(None);
    }
    let issued = municipality
        .issue_doctor(
            &admin,
            &crate::accounts::registry::NewDoctor {
                kind: UserKind::NanbyoDoctor.as_str().into(),
                register_number: "0123456".into(),
                name: "山田 一郎".into(),
                institution: hospital.code.clone(),
                institution_name: hospital.name.clone(),
                department: "脳神経内科".into(),
                expires_on: String::new(),
            },
        )
        .await
        .map_err(crate::Error::from)?;
    Ok(Some((issued.login, issued.password)))
}

/// Puts one paper sheet in the municipality's intake (uploaded by its reviewer, once per data
/// directory) and writes the contractor's data file for it (`paper-demo.xml` in `data`), so
/// the hub's data entry has something to enter. Returns the data file's path.
async fn demo_paper(municipality: &Arc<Node>, data: &Path) -> anyhow::Result<Option<PathBuf>> {
    let path = data.join("paper-demo.xml");
    let held: i64 = municipality
        .store
        .read(|c| {
            Ok::<_, crate::Error>(c.query_row("SELECT count(*) FROM papers", [], |r| r.get(0))?)
        })
        .await?;
    if held > 0 {
        return Ok(path.exists().then_some(path));
    }
    let form = municipality
        .catalogue
        .form("rinko-006")
        .context("the demo needs form rinko-006")?;
    let today = municipality.clock.today_jst();
    let author = Author {
        node: municipality.node_id,
        user: 0,
    };
    // A fictitious patient whose sheet passes the checks, as the contractor would type it.
    let values = crate::cli::seed::sheets(form, 60, 20_261_130, "1399000020", author, 0, today)
        .map(|s| {
            // What the doctor wrote by hand at the foot of the paper.
            let mut v = s.fields();
            for (k, value) in [
                ("doctor.name", "紙 記入".to_string()),
                ("doctor.institution_name", "デモ内科診療所".to_string()),
                ("doctor.written_date", today.to_string()),
            ] {
                if form.item(k).is_some() {
                    v.entry(k.to_string()).or_insert(value);
                }
            }
            v
        })
        .find(|v| {
            nsdb_rules::check(form, v, nsdb_rules::check::Mode::Complete, today).is_empty()
                && v.contains_key("patient.name_kana")
                && v.contains_key("patient.birth_date")
        })
        .context("no fictitious sheet passes the checks")?;
    let xml = nsdb_rules::xml::write(&[nsdb_rules::xml::SheetOut {
        form,
        reference: Some("paper-demo"),
        values: &values,
    }])?;
    std::fs::write(&path, xml).with_context(|| format!("cannot write {}", path.display()))?;
    let reviewer = municipality
        .login("reviewer", DEMO_PASSWORD)
        .await?
        .principal;
    let upload = crate::papers::PaperUpload {
        pdf: demo_pdf(&[
            "Rinsho chosa kojinhyo (paper, scanned) - demo",
            "Disease: 6 (Parkinson's disease)",
            "Written by hand; the contractor enters it from paper-demo.xml.",
        ]),
        name_kana: values["patient.name_kana"].clone(),
        birth_date: values["patient.birth_date"].clone(),
        disease: form.kokuji.to_string(),
    };
    municipality
        .upload_paper(&reviewer, upload)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(path))
}

/// The demo node's configuration file, in the demo's data directory: `DATA/ROLE.toml`
/// (`hub.toml`, `hospital.toml`, `municipality.toml`).
pub fn config_file_name(role: NodeRole) -> String {
    format!("{}.toml", role.as_str())
}

/// Writes a demo node's configuration as a file ([`config_file_name`], paths relative to it),
/// so that the operator's commands (`nsdb research stats|export --config DATA/hub.toml`, `nsdb
/// key-info request --config DATA/hospital.toml`, `nsdb user key …`) run on the demo's nodes as
/// on real ones. Returns its path.
pub fn write_node_config(data: &Path, config: &NodeConfig) -> anyhow::Result<PathBuf> {
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let relative = |p: &Path| {
        p.strip_prefix(data)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let KeySource::File(key) = &config.key else {
        bail!(
            "the demo {} node's key is not in a file",
            config.role.as_str()
        );
    };
    let text = format!(
        "# The demo {role} node, as `nsdb demo` runs it (written by the demo, for the operator's commands).\n\
         name = {}\nrole = \"{role}\"\nlisten = {}\ndata_dir = {}\nkey_file = {}\n\n\
         [institution]\ncode = {}\nname = {}\n",
        quoted(&config.name),
        quoted(&config.listen.to_string()),
        quoted(&relative(&config.data_dir)),
        quoted(&relative(key)),
        quoted(&config.institution.code),
        quoted(&config.institution.name),
        role = config.role.as_str(),
    );
    let path = data.join(config_file_name(config.role));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The check tool, ready to try on the demo: the hospital's key information signed by the demo
/// hub (`DATA/check/hospital.keyinfo`, valid for a year), a check-tool key registered for the
/// hospital's `doctor` (`DATA/check/doctor.key`), and one sample XML file per form the hospital
/// writes most (`DATA/check/xml/`). Returns the command that seals them for 一括登録.
pub async fn demo_check_tool(
    data: &Path,
    hospital: &Arc<Node>,
    hub: &Arc<Node>,
) -> anyhow::Result<String> {
    let dir = data.join("check");
    let xml = dir.join("xml");
    std::fs::create_dir_all(&xml).with_context(|| format!("cannot create {}", xml.display()))?;
    let today = hospital.clock.today_jst();
    let expires = nsdb_rules::Date::new(today.year + 1, today.month, today.day.min(28))
        .context("a date a year from today")?;
    let hub_identity = nsdb_provisioning::NodeIdentity::load(&hub.config.identity_path())
        .context("the demo hub's identity")?;
    let info = crate::imports::key_info_request(&hospital.config, &expires.to_string())?
        .sign(&hub_identity);
    let info_path = dir.join("hospital.keyinfo");
    std::fs::write(&info_path, info.to_text())
        .with_context(|| format!("cannot write {}", info_path.display()))?;
    let key_path = dir.join("doctor.key");
    let key = match nsdb_provisioning::sealed::UserKey::load(&key_path) {
        Ok(k) => k,
        Err(_) => {
            let _ = std::fs::remove_file(&key_path);
            nsdb_provisioning::sealed::UserKey::create(&key_path)?
        }
    };
    hospital.set_user_key("doctor", key.public_key()).await?;
    for form in ["rinko-006", "rinko-002"] {
        if let Some(f) = hospital.catalogue.form(form) {
            let sample = nsdb_rules::xml::sample(f);
            let path = xml.join(format!("{form}.xml"));
            std::fs::write(&path, sample)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(format!(
        "nsdb check {} --key-info {} --hub-key {} --user-key {} --out {}",
        xml.display(),
        info_path.display(),
        info.hub_key,
        key_path.display(),
        dir.join("sealed").display()
    ))
}

/// How many of the hospital's registered demo sheets the municipality's reviewer certifies with
/// 研究利用の同意 given, so the ministry's 研究・統計 has counts to show.
pub const DEMO_CONSENTED: usize = 3;

/// Gives the ministry's 研究・統計 something to show, by the real path: the municipality's
/// reviewer resolves the first [`DEMO_CONSENTED`] of `keys` (access key, birth date) at the hub,
/// waits for each sheet to arrive, and records its review (認定, 研究利用の同意 あり); once the
/// reviews have reached the hub by sync, the hub builds its counts. Returns how many consented
/// sheets the hub counts. Gives up after a minute (the sync is not up).
pub async fn demo_research(
    hub: &Arc<Node>,
    municipality: &Arc<Node>,
    keys: &[(String, String)],
) -> anyhow::Result<u64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(200));
    let reviewer = municipality
        .login("reviewer", DEMO_PASSWORD)
        .await?
        .principal;
    let today = municipality.clock.today_jst();
    let input = crate::review::ReviewInput {
        decision: "approved".into(),
        valid_from: today.to_string(),
        valid_to: format!("{}-12-31", today.year + 1),
        research_consent: "given".into(),
        income: "ippan_1".into(),
        ..Default::default()
    };
    let wanted = keys.len().min(DEMO_CONSENTED) as u64;
    for (key, birth) in keys.iter().take(DEMO_CONSENTED) {
        let id = loop {
            match crate::sync_service::resolve(municipality, &reviewer, key, birth).await {
                Ok(r) => break r.sheet.sheet_id,
                Err(e) if std::time::Instant::now() > deadline => bail!("{e}"),
                Err(_) => pause().await,
            }
        };
        loop {
            let sid = id.clone();
            let arrived = municipality
                .store
                .read(move |c| {
                    Ok::<_, crate::Error>(c.query_row(
                        "SELECT EXISTS (SELECT 1 FROM sheets WHERE id = ?1)",
                        [&sid],
                        |r| r.get::<_, bool>(0),
                    )?)
                })
                .await?;
            if arrived {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("sheet {id} did not arrive at the municipality");
            }
            pause().await;
        }
        municipality
            .record_review(&reviewer, &id, &input)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    loop {
        let (counts, _) = hub.research_build_stats().await?;
        if counts.kept >= wanted || std::time::Instant::now() > deadline {
            return Ok(counts.kept);
        }
        pause().await;
    }
}

/// How many demo sheets the doctor registers, so the municipality has keys to resolve.
const DEMO_REGISTRATIONS: usize = 5;

/// Registers a few of the hospital's demo sheets as its doctor would (登録 through the
/// workflow, keys from the block leased from the hub), once per data directory, and returns
/// every registered sheet's access key (as printed) and birth date, for the municipality's
/// reviewer to type at 受付. Sheets whose checks do not pass stay drafts.
async fn demo_registrations(hospital: &Arc<Node>) -> anyhow::Result<Vec<(String, String)>> {
    let registered = |node: Arc<Node>| async move {
        node.store
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT access_key, birth_date FROM sheets
                     WHERE access_key IS NOT NULL AND birth_date IS NOT NULL
                     ORDER BY updated_at LIMIT 10",
                )?;
                let rows = st
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, crate::Error>(rows)
            })
            .await
    };
    let mut found = registered(hospital.clone()).await?;
    if found.is_empty() {
        let doctor = hospital.login("doctor", DEMO_PASSWORD).await?.principal;
        let drafts: Vec<String> = hospital
            .store
            .read(|c| {
                let mut st = c.prepare(
                    "SELECT id FROM sheets WHERE status = 'draft' AND birth_date IS NOT NULL
                     ORDER BY id LIMIT 60",
                )?;
                let ids = st
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, crate::Error>(ids)
            })
            .await?;
        let mut done = 0;
        for id in drafts {
            if done == DEMO_REGISTRATIONS {
                break;
            }
            let step = crate::sheets::workflow::Step::Register;
            if hospital.step(&doctor, &id, step).await.is_ok() {
                done += 1;
            }
        }
        found = registered(hospital.clone()).await?;
    }
    Ok(found
        .into_iter()
        .map(|(k, b)| {
            let shown = crate::keys::AccessKey::shown(&k);
            (shown, b)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo writes its hub's configuration where `nsdb research … --config` reads it: the
    /// file loads as the same hub (role, data directory, key file, institution).
    #[test]
    fn the_demo_hubs_config_file_opens_the_demo_hub() {
        let dir = tempfile::tempdir().unwrap();
        let hub = demo_nodes()
            .into_iter()
            .find(|n| n.role == NodeRole::Hub)
            .unwrap();
        let config = config(dir.path(), &hub, "127.0.0.1:8440".parse().unwrap()).unwrap();
        let path = write_node_config(dir.path(), &config).unwrap();
        assert_eq!(path, dir.path().join("hub.toml"));
        let read = NodeConfig::from_file(&path).unwrap();
        assert_eq!(read.role, NodeRole::Hub);
        assert_eq!(read.data_dir, config.data_dir);
        match (&read.key, &config.key) {
            (KeySource::File(a), KeySource::File(b)) => assert_eq!(a, b),
            _ => panic!("the key is not read from the demo's key file"),
        }
        assert_eq!(read.institution, config.institution);
        assert_eq!(read.listen, config.listen);
    }
}
