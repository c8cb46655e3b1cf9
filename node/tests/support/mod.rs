//! The in-process HTTP client the node's HTTP tests share: a client of the router that keeps
//! cookies like a browser, or a bearer token like an API client, and reads replies.
//! Each test file uses part of it.
#![allow(dead_code)]

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nsdb::testing::TestNode;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    /// The body's bytes as sent (a PDF, for instance).
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A client of the router that keeps cookies, like a browser.
pub struct Client {
    pub app: Router,
    pub cookies: HashMap<String, String>,
    pub token: Option<String>,
}

impl Client {
    pub fn new(t: &TestNode) -> Client {
        Client {
            app: nsdb::http::router(t.node.clone()),
            cookies: HashMap::new(),
            token: None,
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: String,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if !content_type.is_empty() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let res = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        for sc in res.headers().get_all(header::SET_COOKIE) {
            let sc = sc.to_str().unwrap();
            let (pair, _) = sc.split_once(';').unwrap_or((sc, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || sc.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            raw: bytes.to_vec(),
        }
    }

    pub async fn get(&mut self, uri: &str) -> Reply {
        self.send(Method::GET, uri, "", String::new()).await
    }

    pub async fn json(&mut self, method: Method, uri: &str, body: Value) -> Reply {
        self.send(method, uri, "application/json", body.to_string())
            .await
    }

    pub async fn form(&mut self, uri: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(Method::POST, uri, "application/x-www-form-urlencoded", body)
            .await
    }

    /// Signs in through the API and keeps the bearer token.
    pub async fn api_login(&mut self, login: &str) {
        let r = self
            .json(
                Method::POST,
                "/api/v1/session",
                json!({"login": login, "password": "demo"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        self.token = Some(r.json()["token"].as_str().unwrap().to_string());
    }

    /// Signs in through the login page, as a browser does.
    pub async fn ui_login(&mut self, login: &str) -> String {
        let page = self.get("/login").await;
        let csrf = hidden_csrf(&page.body);
        let r = self
            .form(
                "/login",
                &[("csrf", &csrf), ("login", login), ("password", "demo")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let home = self.get("/sheets/new").await;
        hidden_csrf(&home.body)
    }
}

/// Every session of the node ends, as when they expire: the next request of any user is
/// answered as signed out.
pub async fn expire_sessions(t: &TestNode) {
    t.node
        .store
        .write(|conn| {
            conn.execute("DELETE FROM sessions", [])
                .map_err(nsdb::Error::from)
        })
        .await
        .unwrap();
}

/// The value of the form field `name` in a page (its first occurrence), HTML entities undone.
pub fn hidden_value(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + key.len()..];
    rest[..rest.find('"').unwrap()]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
}

pub fn hidden_csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {html}"));
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

// The same exchanges with the session as a cookie string, for tests that hold several users'
// sessions side by side: (status, body, the cookies set — or, when none, the redirect).

/// One request with `cookie`; a body is sent as a posted form.
pub async fn send(
    app: &Router,
    uri: &str,
    cookie: &str,
    method: Method,
    body: String,
) -> (StatusCode, String, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if !cookie.is_empty() {
        req = req.header(header::COOKIE, cookie);
    }
    if !body.is_empty() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let set = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, text, if set.is_empty() { location } else { set })
}

pub async fn get(app: &Router, uri: &str, cookie: &str) -> (StatusCode, String, String) {
    send(app, uri, cookie, Method::GET, String::new()).await
}

pub async fn sign_in(app: &Router, login: &str) -> String {
    let (_, page, cookie) = get(app, "/login", "").await;
    let csrf = hidden_csrf(&page);
    let body = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("login", login),
        ("password", "demo"),
    ])
    .unwrap();
    let (status, _, session) = send(app, "/login", &cookie, Method::POST, body).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    session
}

/// Posts a form from the page at `page` (for its CSRF token).
pub async fn post(
    app: &Router,
    page: &str,
    uri: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String, String) {
    let (_, html, _) = get(app, page, cookie).await;
    let csrf = hidden_csrf(&html);
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let body = serde_urlencoded::to_string(all).unwrap();
    send(app, uri, cookie, Method::POST, body).await
}
