//! The web UI in a real browser (Debian's headless Chromium through chromedriver): a doctor
//! signs in, writes a sheet, saves it and finds it in the list, with the keyboard where a
//! clerk would use it.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages chromium and
//! chromium-driver; `.ci/run` installs them). Without them the test fails when `CI=true` and says
//! it was skipped otherwise.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use nsdb::config::NodeRole;
use nsdb::testing::TestNode;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: tokio::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Starts chromedriver, or says why it cannot (None outside CI, a failure in CI).
async fn driver() -> Option<Driver> {
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
        _profile: tempfile::tempdir().unwrap(),
    })
}

async fn browser(d: &Driver) -> Client {
    let profile = d._profile.path().display().to_string();
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1024",
                format!("--user-data-dir={profile}"),
            ]
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

async fn text_of(c: &Client, css: &str) -> String {
    let found = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    let element = match found {
        Ok(e) => e,
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let page = c.source().await.unwrap_or_default();
            panic!("{css}: {e}\nat {url}:\n{page}");
        }
    };
    element.text().await.unwrap()
}

/// Waits until the browser has navigated to a URL containing `part`.
async fn wait_url(c: &Client, part: &str) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_signs_in_writes_a_sheet_saves_it_and_finds_it_in_the_list() {
    let Some(d) = driver().await else { return };
    let t = TestNode::start_with_sheets(NodeRole::Hospital, 5).await;
    let c = browser(&d).await;

    c.goto(&t.url("/sheets")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    // Keyboard only: the login field has focus; type, tab, type, enter.
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys("doctor")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(&format!("demo{}", char::from(Key::Enter)))
        .await
        .unwrap();
    wait_url(&c, "/sheets").await;
    let h1 = text_of(&c, "main h1").await;
    assert_eq!(h1, "臨床調査個人票検索");
    assert!(text_of(&c, "p.count").await.contains("5件"));

    c.find(Locator::LinkText("新規作成"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css(
            "form[action='/sheets']:has(input[name='form_id'][value='rinko-006']) button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "/edit").await;
    let title = text_of(&c, "main h1").await;
    assert!(title.contains("パーキンソン病"), "{title}");

    c.find(Locator::Id("f-patient-name"))
        .await
        .unwrap()
        .send_keys("試験 ブラウザ")
        .await
        .unwrap();
    c.find(Locator::Id("f-patient-name_kana"))
        .await
        .unwrap()
        .send_keys("ｼｹﾝ ﾌﾞﾗｳｻﾞ")
        .await
        .unwrap();
    c.find(Locator::Id("f-patient-postal_code"))
        .await
        .unwrap()
        .send_keys("1234")
        .await
        .unwrap();
    c.find(Locator::Css("input[name='patient.sex'][value='2']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("button[value='save']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(&c, "saved=1").await;
    assert_eq!(text_of(&c, "p.notice").await, "一時保存しました。");
    // What was typed is there, the kana normalised, the bad postal code kept and flagged.
    let kana = c
        .find(Locator::Id("f-patient-name_kana"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kana.as_deref(), Some("シケン ブラウザ"));
    let postal = c.find(Locator::Id("f-patient-postal_code")).await.unwrap();
    assert_eq!(
        postal.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert!(text_of(&c, "section.messages").await.contains("郵便番号"));

    let png = c.screenshot().await.unwrap();
    let _ = std::fs::write(std::env::temp_dir().join("nsdb-browser-editor.png"), png);

    c.goto(&t.url("/sheets")).await.unwrap();
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys(&format!("シケン{}", char::from(Key::Enter)))
        .await
        .unwrap();
    wait_url(&c, "q=").await;
    assert!(text_of(&c, "p.count").await.contains("1件"));
    let row = text_of(&c, "table.list tbody tr").await;
    assert!(row.contains("シケン ブラウザ"), "{row}");
    assert!(row.contains("女性") && row.contains("一時保存"), "{row}");
    c.close().await.unwrap();
}
