//! `nsdb serve`: one node from its configuration, until Ctrl-C.

use crate::{Node, NodeConfig};

/// Serves one node until Ctrl-C: opens it and answers HTTP on its configured address.
pub async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    let addr = config.listen;
    let node = Node::open(config, crate::Clock::System)?;
    let inst = node.config.institution.clone();
    let kind = node.role().institution_kind();
    node.store
        .write(move |c| crate::accounts::ensure_institution(c, &inst.code, &inst.name, kind))
        .await?;
    let _sync = crate::sync_service::start(&node, Default::default())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(target: "nsdb", %addr, role = ?node.role(), "serving");
    axum::serve(listener, crate::http::router(node))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
