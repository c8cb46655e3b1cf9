//! The real-browser harness the browser tests share: chromedriver on a free loopback port, a
//! browser session with a profile of its own, and waits that fail with the page they looked at.
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages chromium and
//! chromium-driver); without them a test fails when `CI=true` and says it was skipped otherwise.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use nsdb::testing::TestNode;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port; killed on drop.
pub struct Driver {
    child: tokio::process::Child,
    port: u16,
    profiles: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Starts chromedriver, or says why it cannot (None outside CI, a failure in CI).
pub async fn driver() -> Option<Driver> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        let msg =
            format!("browser test needs {missing:?}: apt-get install chromium chromium-driver");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    let port = free_port().await;
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Driver {
        child,
        port,
        profiles: tempfile::tempdir().unwrap(),
    })
}

/// A new browser session with a profile of its own (its own cookies).
pub async fn browser(d: &Driver) -> Client {
    browser_with(d, &[]).await
}

/// [`browser`] with more command-line switches for Chromium (e.g. to accept the test CA's
/// server certificate).
pub async fn browser_with(d: &Driver, extra: &[&str]) -> Client {
    let profile = tempfile::tempdir_in(d.profiles.path()).unwrap().keep();
    let profile = profile.display().to_string();
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1024",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    args.push(format!("--user-data-dir={profile}"));
    args.extend(extra.iter().map(|a| a.to_string()));
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": args,
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a browser session")
}

/// Waits up to ten seconds for an element; when it never comes, fails with the page it was
/// looked for on.
pub async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    let found = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(el) => el,
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let page = c.source().await.unwrap_or_default();
            let head: String = page.chars().take(3000).collect();
            panic!("{css}: {e}\nat {url}:\n{head}");
        }
    }
}

/// The text of an element, waiting for it; an element that goes stale while it is read (the
/// page was still being replaced) is looked up again.
pub async fn text_of(c: &Client, css: &str) -> String {
    for _ in 0..50 {
        match wait_for(c, css).await.text().await {
            Ok(text) => return text,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    wait_for(c, css).await.text().await.unwrap()
}

/// Waits up to ten seconds for the element's text to be `expected`, as a user waits for the
/// next page after a click; fails with the text it last had.
pub async fn wait_text(c: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        last = text_of(c, css).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, expected, "{css}");
}

/// Waits until the browser has navigated to a URL containing `part`.
pub async fn wait_url(c: &Client, part: &str) {
    for _ in 0..100 {
        if let Ok(url) = c.current_url().await
            && url.as_str().contains(part)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = c
        .current_url()
        .await
        .map(|u| u.to_string())
        .unwrap_or_default();
    panic!("the browser did not reach {part}; it is at {url}");
}

/// Finds an element and, like a user, opens the editor tab it is on when it is hidden.
pub async fn reveal(c: &Client, css: &str) -> fantoccini::elements::Element {
    let el = wait_for(c, css).await;
    if !el.is_displayed().await.unwrap_or(true) {
        let section = el
            .find(Locator::XPath(
                "./ancestor::fieldset[starts-with(@id,'s-')][1]",
            ))
            .await
            .unwrap_or_else(|e| panic!("{css} is hidden outside any section: {e}"));
        let id = section.attr("id").await.unwrap().unwrap_or_default();
        c.find(Locator::Css(&format!("nav.sections a[href='#{id}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    el
}

pub async fn click(c: &Client, css: &str) {
    reveal(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

pub async fn type_into(c: &Client, css: &str, text: &str) {
    let field = reveal(c, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

pub async fn sign_in(c: &Client, t: &TestNode, login: &str) {
    c.goto(&t.url("/login")).await.unwrap();
    type_into(c, "#login", login).await;
    type_into(c, "#password", &format!("demo{}", char::from(Key::Enter))).await;
    wait_url(c, "/sheets").await;
}

/// Marks the page now shown, so that [`wait_notice`] waits for the next page, not this one.
pub async fn mark_page(c: &Client) {
    let _ = c.execute("document.body.dataset.left = '1';", vec![]).await;
}

/// Waits until a page (not one marked by [`mark_page`]) shows the one-time notice of an action
/// (the session's, never the address's) containing `text`.
pub async fn wait_notice(c: &Client, text: &str) {
    for _ in 0..100 {
        let fresh = c
            .execute("return document.body.dataset.left === undefined;", vec![])
            .await
            .is_ok_and(|v| v.as_bool() == Some(true));
        if fresh
            && let Ok(el) = c.find(fantoccini::Locator::Css("p.flash")).await
            && el.text().await.is_ok_and(|t| t.contains(text))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no notice containing {text}");
}
