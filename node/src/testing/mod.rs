//! Test support: a real node, in-process, on a loopback port, in one line.
//!
//! `TestNode::start(NodeRole::Hospital).await` gives a node with the demo institution and users
//! of that role (password `demo`), its own encrypted database in a temporary directory, and its
//! HTTP server listening on 127.0.0.1 with a free port. Used by this crate's tests and by the
//! cross-crate tests in `tests/`; never by the running product.

pub mod sync;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::Node;
use crate::accounts::policy::UserKind;
use crate::accounts::{NewUser, create_user, ensure_institution, hash_password};
use crate::cli::demo;
use crate::config::NodeRole;

/// The in-process hub table test nodes lease key blocks from when they have no hub: the hub's
/// own leasing (`keys::lease_block`) on a `key_leases` table in memory, shared by every test
/// node of the process, so no two of them ever issue from one block.
fn test_hub() -> &'static std::sync::Mutex<rusqlite::Connection> {
    static HUB: std::sync::OnceLock<std::sync::Mutex<rusqlite::Connection>> =
        std::sync::OnceLock::new();
    HUB.get_or_init(|| {
        let c = rusqlite::Connection::open_in_memory().expect("in-memory database");
        c.execute_batch(
            "CREATE TABLE key_leases (block INTEGER PRIMARY KEY, node TEXT NOT NULL,
                 leased_at INTEGER NOT NULL, next_serial INTEGER NOT NULL DEFAULT 0);",
        )
        .expect("the test hub's table");
        std::sync::Mutex::new(c)
    })
}

/// Leases a key block to `node` from the in-process test hub and records it on the node, as a
/// lease from the hub would be. Returns the block.
pub async fn lease_test_block(node: &Node) -> u32 {
    let own = node.node_id.to_string();
    let now = node.clock.now_ms();
    let block = {
        let hub = test_hub().lock().expect("test hub");
        crate::keys::lease_block(&hub, &own, now)
            .expect("test lease")
            .expect("a free block")
    };
    node.store
        .write(move |c| {
            crate::keys::accept_lease(c, block, &own, now)?;
            Ok::<_, crate::Error>(())
        })
        .await
        .expect("lease recorded");
    block
}

/// Every required item of form `form_id` filled with a valid value so the checks pass (the
/// first code of a code item, fixed dates and numbers at their minimum, `kana` for kana items):
/// a sheet a test can register. Panics when the form is not in the node's catalogue.
pub fn required_values(
    node: &Node,
    form_id: &str,
    kana: &str,
) -> std::collections::BTreeMap<String, String> {
    use nsdb_rules::ItemType;
    let form = node
        .catalogue
        .form(form_id)
        .expect("the form is in the catalogue");
    form.items()
        .filter(|i| i.required)
        .map(|item| {
            let value = match item.ty {
                ItemType::Code | ItemType::Codes => item.codes[0].code.clone(),
                ItemType::Date => "2024-04-01".into(),
                ItemType::YearMonth => "2019-04".into(),
                ItemType::Kana => kana.into(),
                ItemType::Postal => "100-8916".into(),
                ItemType::InsurerNo => "33120015".into(),
                ItemType::Integer | ItemType::Decimal => item.min.unwrap_or(1.0).to_string(),
                ItemType::Digits => "1234567".into(),
                ItemType::Text => "記入".into(),
            };
            (item.id.clone(), value)
        })
        .collect()
}

/// A running node for tests. Stops when dropped.
pub struct TestNode {
    pub node: Arc<Node>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    server: Server,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.server.task.abort();
    }
}

/// A node's HTTP server in a test: its task, and the signal that stops it gracefully (no new
/// connection is accepted and idle ones are closed, as when the process goes away).
struct Server {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Server {
    fn spawn(listener: tokio::net::TcpListener, node: Arc<Node>) -> Server {
        let app = crate::http::router(node).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        Server { task, stop }
    }
}

impl TestNode {
    /// A node of `role` with the demo users and no sheets.
    pub async fn start(role: NodeRole) -> TestNode {
        TestNode::start_with_sheets(role, 0).await
    }

    /// A node of `role` with the demo users and, on a hospital, `sheets` fictitious sheets and
    /// a key block leased from the in-process test hub ([`lease_test_block`]), so 登録 works
    /// without a hub.
    pub async fn start_with_sheets(role: NodeRole, sheets: usize) -> TestNode {
        let test = TestNode::start_unleased(role, sheets).await;
        if role == NodeRole::Hospital {
            lease_test_block(&test.node).await;
        }
        test
    }

    /// A node like [`TestNode::start_with_sheets`] that holds no key block: 登録 is refused
    /// until it leases one from a hub.
    pub async fn start_unleased(role: NodeRole, sheets: usize) -> TestNode {
        let spec = demo::demo_nodes()
            .into_iter()
            .find(|n| n.role == role)
            .expect("a demo node of every role");
        TestNode::start_spec(spec, sheets).await
    }

    /// A node of `role` at another institution (`code`, `name`) with the demo users of that
    /// role and no key block: a second hospital or municipality.
    pub async fn start_at(role: NodeRole, code: &str, name: &str) -> TestNode {
        let spec = demo::demo_nodes()
            .into_iter()
            .find(|n| n.role == role)
            .expect("a demo node of every role");
        let spec = demo::DemoNode {
            institution: crate::config::Institution {
                code: code.into(),
                name: name.into(),
            },
            ..spec
        };
        TestNode::start_spec(spec, 0).await
    }

    async fn start_spec(spec: demo::DemoNode, sheets: usize) -> TestNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("local address");
        let node = demo::open_node_as(dir.path(), &spec, addr, sheets)
            .await
            .expect("demo node opens");
        let server = Server::spawn(listener, node.clone());
        TestNode {
            node,
            addr,
            dir,
            server,
        }
    }

    /// A municipality node like the demo's but with 自治体コード `code` (its reviewer is
    /// `reviewer`, password `demo`): a second municipality for tests.
    pub async fn start_municipality(code: &str) -> TestNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("local address");
        let mut spec = demo::demo_nodes()
            .into_iter()
            .find(|n| n.role == NodeRole::Municipality)
            .expect("a demo municipality");
        spec.institution = crate::config::Institution {
            code: code.to_string(),
            name: format!("試験自治体 {code}"),
        };
        let config = demo::config(dir.path(), &spec, addr).expect("configuration");
        let node = Node::open(config, crate::Clock::System).expect("node opens");
        demo::seed(&node, &spec, 0).await.expect("seeded");
        let server = Server::spawn(listener, node.clone());
        TestNode {
            node,
            addr,
            dir,
            server,
        }
    }

    /// Opens the same node again from its data directory (a restart): a new `Node` with fresh
    /// in-memory state, its HTTP server on a new loopback port; the old server stops. Stop the
    /// node's sync first.
    pub async fn reopen(&mut self) {
        self.reopen_with(|_| ()).await;
    }

    /// [`TestNode::reopen`] with its configuration first changed by `change` (as an operator
    /// edits the file and restarts the node).
    pub async fn reopen_with(&mut self, change: impl FnOnce(&mut crate::config::NodeConfig)) {
        self.server.task.abort();
        let mut config = self.node.config.clone();
        change(&mut config);
        let node = Node::open(config, crate::Clock::System).expect("the node opens again");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("local address");
        self.server = Server::spawn(listener, node.clone());
        self.node = node;
        self.addr = addr;
    }

    /// Stops answering HTTP, as when the node's process goes away: no new connection is
    /// accepted and idle ones are closed. [`TestNode::serve_again`] answers again at the same
    /// address.
    pub async fn stop_serving(&mut self) {
        let _ = self.server.stop.send(true);
        let task = &mut self.server.task;
        if tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .is_err()
        {
            self.server.task.abort();
        }
    }

    /// Answers HTTP again at the same address after [`TestNode::stop_serving`].
    pub async fn serve_again(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the node's address {} is taken: {e}", self.addr),
            }
        };
        self.server = Server::spawn(listener, self.node.clone());
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Adds a user (password `demo`) at `institution`, creating the institution if needed.
    pub async fn add_user(&self, login: &str, kind: UserKind, institution: &str) -> u64 {
        let hash = hash_password(demo::DEMO_PASSWORD).expect("hash");
        let (login, institution) = (login.to_string(), institution.to_string());
        let now = self.node.clock.now_ms();
        self.node
            .store
            .write(move |c| {
                ensure_institution(c, &institution, &format!("{institution} 病院"), "hospital")?;
                create_user(
                    c,
                    &NewUser {
                        login: &login,
                        name: &format!("{login} 試験"),
                        kind,
                        institution: &institution,
                        department: None,
                        password_hash: &hash,
                    },
                    now,
                )
            })
            .await
            .expect("user added")
    }
}

/// Records that `node`'s user `login` resolved sheet `id` (access key `key`) at `at_ms`: the
/// `resolutions` row key resolution writes, for tests that stand in for resolution.
pub async fn record_resolution(node: &Arc<Node>, id: &str, key: &str, login: &str, at_ms: i64) {
    let (id, key, login) = (id.to_string(), key.to_string(), login.to_string());
    node.store
        .write(move |c| {
            let user: i64 =
                c.query_row("SELECT id FROM users WHERE login = ?1", [&login], |r| {
                    r.get(0)
                })?;
            c.execute(
                "INSERT OR REPLACE INTO resolutions (sheet_id, access_key, user_id, resolved_at)
                 VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![id, key, user, at_ms],
            )?;
            Ok::<_, crate::Error>(())
        })
        .await
        .expect("resolution recorded");
}
