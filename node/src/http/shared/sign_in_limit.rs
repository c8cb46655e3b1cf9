//! Sign-in attempts per client address: at most [`BURST`] at once, refilled one every
//! [`REFILL`] (20 a minute), on the posts that check a password or a second-factor code
//! (`/login`, `/login/code`, `/reauth`, `/api/v1/session`, `/api/v1/session/reauth`) only. Beyond that the
//! answer is 429 with `Retry-After` before any password is checked, so one address cannot
//! guess fast nor fill the password checks' pool. The limit is generous enough for a hospital
//! whose staff all sign in through one address at the start of a shift.
//!
//! The address is the client's as [`super::client::address`] tells it: the TCP peer
//! (`ConnectInfo`), or behind one of the node's `trusted_proxies` the client its
//! `X-Forwarded-For` names; a request without a peer (the router called in-process) counts
//! against one shared key. Must never look at the body or the login.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::json::ApiError;
use super::page::node_label;
use super::session::{LOGIN_CSRF_COOKIE, private_cookie};
use crate::http::AppState;

/// Sign-in attempts one address may make at once.
pub const BURST: u32 = 20;
/// How fast the allowance refills: one attempt every 3 seconds.
pub const REFILL: Duration = Duration::from_secs(3);
/// Addresses remembered before the idle ones are forgotten.
const MAX_TRACKED: usize = 10_000;

/// The per-address limiter of one router.
pub struct SignInLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for SignInLimit {
    fn default() -> Self {
        let burst = NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(REFILL)
            .unwrap_or_else(|| Quota::per_minute(burst))
            .allow_burst(burst);
        SignInLimit {
            limiter: RateLimiter::keyed(quota),
        }
    }
}

fn is_sign_in(req: &Request) -> bool {
    req.method() == Method::POST
        && matches!(
            req.uri().path(),
            "/login" | "/login/code" | "/reauth" | "/api/v1/session" | "/api/v1/session/reauth"
        )
}

/// Middleware: refuses a sign-in beyond the address's allowance with 429.
pub async fn limit(
    State((node, limit)): State<(AppState, Arc<SignInLimit>)>,
    req: Request,
    next: Next,
) -> Response {
    if !is_sign_in(&req) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let addr = super::client::address(peer, req.headers(), &node.config.trusted_proxies);
    if limit.limiter.len() > MAX_TRACKED {
        limit.limiter.retain_recent();
    }
    let Err(not_until) = limit.limiter.check_key(&addr) else {
        return next.run(req).await;
    };
    let wait = not_until
        .wait_time_from(governor::clock::Clock::now(limit.limiter.clock()))
        .as_secs()
        + 1;
    node.metrics.sign_in_failed();
    tracing::warn!(target: "nsdb::http", %addr, "sign-in attempts over the limit");
    let message = format!(
        "ログインの試行が多すぎます。{wait}秒ほど待ってから、もう一度ログインしてください。"
    );
    let retry = [(header::RETRY_AFTER, wait.to_string())];
    if req.uri().path().starts_with("/api/") {
        let e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sign_ins", message);
        return (retry, e).into_response();
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let page = nsdb_ui::login(&node_label(&node), &token, Some(&message), "", None);
    (
        StatusCode::TOO_MANY_REQUESTS,
        retry,
        axum_extra::extract::cookie::CookieJar::new().add(private_cookie(LOGIN_CSRF_COOKIE, token)),
        Html(page.into_string()),
    )
        .into_response()
}
