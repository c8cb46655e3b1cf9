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

/// A running node for tests. Stops when dropped.
pub struct TestNode {
    pub node: Arc<Node>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestNode {
    /// A node of `role` with the demo users and no sheets.
    pub async fn start(role: NodeRole) -> TestNode {
        TestNode::start_with_sheets(role, 0).await
    }

    /// A node of `role` with the demo users and, on a hospital, `sheets` fictitious sheets.
    pub async fn start_with_sheets(role: NodeRole, sheets: usize) -> TestNode {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("local address");
        let node = demo::open_node(dir.path(), role, addr, sheets)
            .await
            .expect("demo node opens");
        let app =
            crate::http::router(node.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestNode {
            node,
            addr,
            dir,
            server,
        }
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
