//! The hub's public page in a real browser: Debian's headless Chromium, driven through
//! chromedriver (W3C WebDriver over HTTP on loopback), with JavaScript turned off. A person
//! types an address into the form, presses the button, and reads the answer.

use std::process::{Command, Stdio};
use std::time::Duration;

use crowdwall_proto::Signal;
use serde_json::{json, Value};

use crate::common::hub::{cfg, enrol, now_s, TestHub};
use crate::common::prerequisites;
use crate::common::proc::spawn;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Driver {
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method, &url);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        if v["value"].get("error").is_some() {
            return Err(v);
        }
        Ok(v["value"].clone())
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err(v) => panic!("webdriver {path}: {v}"),
        }
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_string()
    }

    async fn text(&self, css: &str) -> String {
        self.text_when(css, |_| true).await
    }

    /// The text of `css` once it satisfies `ready`. A click on a submit button returns before
    /// the next page has replaced the old one, so the element found may belong to the page that
    /// is going away ("stale element reference") or still show the previous answer: ask again
    /// until the new page answers. The deadline only bounds a hang; it is not a timing goal.
    async fn text_when(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            let found = self
                .try_call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            if let Ok(v) = found {
                if let Some(e) = v[ELEMENT].as_str() {
                    let t = self
                        .try_call(reqwest::Method::GET, &format!("/element/{e}/text"), None)
                        .await;
                    if let Ok(t) = t {
                        last = t.as_str().unwrap_or_default().to_string();
                        if ready(&last) {
                            return last;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_looks_up_an_address_without_javascript() {
    if !prerequisites(&["chromium", "chromedriver"], false) {
        return;
    }
    // A hub with one listed address and one merely reported.
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(
        &format!("sqlite:{}", dir.path().join("hub.db").display()),
        cfg(),
    )
    .await;
    let hub_url = hub.url();
    let now = now_s();
    for n in 1..=3 {
        let agent = enrol(&hub, &format!("127.0.{}.1", 40 + n)).await;
        let mut sigs = vec![Signal {
            uid: "a".into(),
            ip: "45.10.0.1".into(),
            scenario: "ssh-bruteforce".into(),
            first_seen: now - 100,
            last_seen: now - 50,
            events: 6,
        }];
        // two networks: one alone gives no score (issue 12.5)
        if n <= 2 {
            sigs.push(Signal {
                uid: "b".into(),
                ip: "45.10.0.2".into(),
                scenario: "ssh-user-enum".into(),
                first_seen: now - 100,
                last_seen: now - 50,
                events: 5,
            });
        }
        agent.client.push(&sigs).await.unwrap();
    }

    // chromedriver on a free loopback port
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _driver = spawn(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "chromedriver",
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/status")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "chromedriver did not start");
    let profile = tempfile::tempdir().unwrap();
    // The flags that keep Chromium off the (closed) network; JavaScript off by policy.
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--window-size=1000,1200",
                     format!("--user-data-dir={}", profile.path().display())],
            "prefs": {"profile.managed_default_content_settings.javascript": 2}
        }
    }}});
    let v: Value = http
        .post(format!("{base}/session"))
        .json(&caps)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {v}"))
        .to_string();
    let d = Driver {
        http,
        base,
        session,
    };

    d.call(
        reqwest::Method::POST,
        "/url",
        Some(json!({"url": format!("{hub_url}/")})),
    )
    .await;
    // the statistics are on the page before any look-up
    let scen = d.text("#scenarios").await;
    assert!(scen.contains("ssh-bruteforce"), "{scen}");
    let hours = d.text("#hours").await;
    assert!(hours.contains('5'), "5 signals this hour: {hours}");

    // type an address, press the button
    let input = d.find("#ip").await;
    d.call(
        reqwest::Method::POST,
        &format!("/element/{input}/value"),
        Some(json!({"text": "45.10.0.1"})),
    )
    .await;
    let button = d.find("button[type=submit]").await;
    d.call(
        reqwest::Method::POST,
        &format!("/element/{button}/click"),
        Some(json!({})),
    )
    .await;
    let result = d.text_when("#result", |t| t.contains("45.10.0.1")).await;
    assert!(result.contains("malicious"), "{result}");
    assert!(result.contains("45.10.0.1"), "{result}");
    assert!(result.contains("ssh-bruteforce (3)"), "{result}");
    assert!(result.contains("yes, until"), "{result}");
    let url = d
        .call(reqwest::Method::GET, "/url", None)
        .await
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(url.ends_with("/?ip=45.10.0.1"), "{url}");
    // a screenshot for people to look at (not asserted)
    let shot = d.call(reqwest::Method::GET, "/screenshot", None).await;
    if let (Some(b64), Ok(out)) = (shot.as_str(), std::env::var("HUB_PAGE_SCREENSHOT")) {
        let _ = std::fs::write(out, decode_base64(b64));
    }

    // a reported but unlisted address, an unknown one, and nonsense
    for (ip, want) in [
        ("45.10.0.2", "suspicious"),
        ("45.10.0.3", "never reported"),
        ("<script>x</script>", "is not an IP address"),
    ] {
        let input = d.find("#ip").await;
        d.call(
            reqwest::Method::POST,
            &format!("/element/{input}/clear"),
            Some(json!({})),
        )
        .await;
        d.call(
            reqwest::Method::POST,
            &format!("/element/{input}/value"),
            Some(json!({"text": ip})),
        )
        .await;
        let button = d.find("button[type=submit]").await;
        d.call(
            reqwest::Method::POST,
            &format!("/element/{button}/click"),
            Some(json!({})),
        )
        .await;
        // every answer names the address asked about, so an answer naming it is the new page
        let result = d.text_when("#result", |t| t.contains(ip)).await;
        assert!(result.contains(want), "{ip}: {result}");
    }
    // the hostile input was shown as text, not markup
    let src = d
        .call(reqwest::Method::GET, "/source", None)
        .await
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!src.contains("<script>x"), "unescaped input in the page");
    let _ = d.call(reqwest::Method::DELETE, "", None).await;
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
