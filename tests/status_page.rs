//! The status page on the admin listener, black-box: its files and data
//! calls from a real `casarray serve`, and the page itself in a real
//! headless Chromium (Debian's `chromium` and `chromium-driver`) in front
//! of two mock mailbox servers.
//!
//! The browser test needs the browser: when it is missing it fails if
//! `CASARRAY_REQUIRE_BROWSER=1` (CI sets it) and is skipped, saying why,
//! otherwise. `CASARRAY_STATUS_SCREENSHOT=docs/status-page.png` writes the
//! README's screenshot.

#[path = "browser/webdriver.rs"]
mod webdriver;

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use webdriver::Browser;

const TOKEN: &str = "status-page-t0ken";

/// An array in front of two mock mailbox servers (EX1, EX2), with the
/// admin token TOKEN and databases DB01 and DB02.
struct Lab {
    _dir: tempfile::TempDir,
    array: Proc,
    addrs: ArrayAddrs,
    mocks: Vec<(Proc, SocketAddr)>,
    client: Client,
}

async fn lab() -> Lab {
    let dir = tempdir();
    let certs = self_signed(dir.path());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mocks = vec![
        spawn_mock("EX1", &store, &["--fqdn", "ex1.lab.local"]),
        spawn_mock("EX2", &store, &["--fqdn", "ex2.lab.local"]),
    ];
    let token = dir.path().join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&token, private).unwrap();
    let extra = "[admin]\ntoken_file = \"admin.token\"\n\n\
                 [[database]]\nname = \"DB01\"\nrpc_client_access_server = \"mail.lab.com\"\n\n\
                 [[database]]\nname = \"DB02\"\n";
    let members = [("EX1", mocks[0].1), ("EX2", mocks[1].1)];
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &members, extra)).unwrap();
    let (array, addrs) = spawn_array_with(&config, &[], Some(&dir.path().join("array.log")));
    let client = Client::h1(addrs.https, &certs.ca_pem);
    for m in ["EX1", "EX2"] {
        wait_until(&format!("{m} up"), Duration::from_secs(30), || {
            member_up(addrs.admin, m, "owa")
        })
        .await;
    }
    Lab {
        _dir: dir,
        array,
        addrs,
        mocks,
        client,
    }
}

/// A 90-day self-signed certificate for mail.lab.com and
/// autodiscover.lab.com, made by `casarray cert self-signed` (so the page
/// shows a realistic expiry).
fn self_signed(dir: &Path) -> TestCerts {
    let out = std::process::Command::new(BIN)
        .args([
            "cert",
            "self-signed",
            "--fqdn",
            "mail.lab.com",
            "--san",
            "autodiscover.lab.com",
            "--days",
            "90",
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = dir.join("mail.lab.com.crt");
    TestCerts {
        ca_pem: std::fs::read_to_string(&cert).unwrap(),
        key: dir.join("mail.lab.com.key"),
        cert,
    }
}

/// Raw GET on the admin listener: (status, headers, body).
async fn admin_get(admin: SocketAddr, path: &str) -> (u16, http::HeaderMap, String) {
    use http_body_util::{BodyExt, Empty};
    let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", admin.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_page_and_its_data_from_a_running_array() {
    let lab = lab().await;
    let admin = lab.addrs.admin;
    for (path, kind) in [
        ("/", "text/html"),
        ("/status", "text/html"),
        ("/status/app.js", "text/javascript"),
        ("/status/style.css", "text/css"),
        ("/status/icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = admin_get(admin, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'")
                && csp.contains("style-src 'self'")
                && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert!(!body.is_empty());
    }
    let (_, _, html) = admin_get(admin, "/").await;
    assert!(html.contains("<script src=\"/status/app.js\" defer></script>"));

    // Traffic, then the series shows it within a few samples.
    for _ in 0..20 {
        let r = lab.client.get("/owa/healthcheck.htm").await.unwrap();
        assert_eq!(r.status(), 200);
    }
    wait_until("a rate in /api/series", Duration::from_secs(10), || async {
        let (_, _, body) = admin_get(admin, "/api/series").await;
        let v: Value = serde_json::from_str(&body).unwrap();
        let total: f64 = v["requests_per_s"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .sum();
        let ex: f64 = ["EX1", "EX2"]
            .iter()
            .flat_map(|m| v["members"][m].as_array().cloned().unwrap_or_default())
            .filter_map(|x| x.as_f64())
            .sum();
        total > 0.0 && ex > 0.0 && v["capacity"] == 600 && v["interval_ms"] == 1000
    })
    .await;
    let (status, _, body) = admin_get(admin, "/api/overview").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["certificates"][0]["name"], "mail.lab.com", "{v}");
    assert_eq!(v["certificates"][0]["days_left"], 89, "{v}");
    assert_eq!(v["reloads"]["success"], 0);
    assert_eq!(v["reloads"]["last"], Value::Null);
    assert!(v["started_unix"].as_i64().unwrap() > 0);

    // A reload is seen, with its time.
    lab.array.signal(libc::SIGHUP);
    wait_until(
        "the reload in /api/overview",
        Duration::from_secs(10),
        || async {
            let (_, _, body) = admin_get(admin, "/api/overview").await;
            let v: Value = serde_json::from_str(&body).unwrap();
            v["reloads"]["success"] == 1
                && v["reloads"]["last"]["result"] == "success"
                && v["reloads"]["last"]["at_unix_ms"].as_i64().unwrap_or(0) > 0
        },
    )
    .await;
}

/// The browser and its driver, or `None` (skip) when they are missing and
/// not required.
fn browser_or_skip() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    match webdriver::locate() {
        Ok(found) => Some(found),
        Err(why) if std::env::var("CASARRAY_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!("CASARRAY_REQUIRE_BROWSER=1 but {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED the_status_page_in_a_browser: {why} (set CASARRAY_REQUIRE_BROWSER=1 to fail instead)");
            None
        }
    }
}

/// Waits until the members table's rows read `expected` ("NAME=status ...",
/// status being healthy, unhealthy, down or draining), at most `limit`.
fn wait_rows(browser: &Browser, limit: Duration, expected: &str) -> Result<Duration, String> {
    browser.wait_for_value(
        limit,
        "return Array.from(document.querySelectorAll('#members tr[data-member]'))\
         .map(r => r.dataset.member + '=' + r.dataset.status).join(' ');",
        &json!(expected),
    )
}

/// A script that is true when the result line is of `kind` and contains
/// every one of `words`.
fn result_says(kind: &str, words: &[&str]) -> String {
    format!(
        "const r = document.getElementById('result'); \
         return !r.hidden && r.dataset.kind === {} && {}.every(w => r.textContent.includes(w));",
        json!(kind),
        json!(words)
    )
}

async fn member_state(admin: SocketAddr, name: &str) -> String {
    let v = members(admin).await;
    v.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .and_then(|m| m["state"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Sends requests through the array until stopped, for the sparklines.
fn traffic(client: Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let paths = [
            "/owa/healthcheck.htm",
            "/ews/healthcheck.htm",
            "/nothing/here",
        ];
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let _ = client.get(paths[i % paths.len()]).await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_a_browser() {
    let Some((chromium, chromedriver)) = browser_or_skip() else {
        return;
    };
    let began = Instant::now();
    let mut lab = lab().await;
    let admin = lab.addrs.admin;
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(lab.client.clone(), Arc::clone(&stop));

    let browser = Browser::start(&chromium, &chromedriver, 1280, 1000).unwrap();
    let started_browser = began.elapsed();
    browser.goto(&format!("http://{admin}/")).unwrap();

    // 1. Loads, both members healthy, the databases listed, live.
    let t = wait_rows(&browser, Duration::from_secs(10), "EX1=healthy EX2=healthy").unwrap();
    eprintln!("page shows both members healthy after {t:?}");
    let probe = "return [\
         Array.from(document.querySelectorAll('#databases [data-database]:not(button)'))\
             .map(e => e.dataset.database).join(' '),\
         document.getElementById('live').dataset.state,\
         document.querySelectorAll('#members td.cell.up').length];";
    browser
        .wait_for_value(
            Duration::from_secs(5),
            probe,
            &json!(["DB01 DB02", "live", 18]),
        )
        .unwrap();

    let screenshot_to = std::env::var_os("CASARRAY_STATUS_SCREENSHOT").map(PathBuf::from);
    if screenshot_to.is_some() {
        // Some traffic in the sparklines before anything happens.
        tokio::time::sleep(Duration::from_secs(30)).await;
    }

    // 2. One service failing on EX1: its cell says down, with the reason.
    let (status, _) = http_send(lab.mocks[0].1, "POST", "/mock/fail/owa", "", &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    browser
        .wait_for(
            Duration::from_secs(3),
            "const c = document.querySelector('#members tr[data-member=\"EX1\"] td[data-service=\"owa\"]'); \
             return c !== null && c.dataset.state === 'down' && c.textContent.includes('down') \
             && c.querySelector('.reason') !== null && c.querySelector('.reason').textContent.length > 0 \
             && document.querySelector('#members tr[data-member=\"EX1\"]').dataset.status === 'unhealthy';",
        )
        .unwrap();

    // 3. Drain EX2 with a wrong token: refused, shown, nothing changes.
    browser
        .click(
            &browser
                .find("button[data-action=\"drain\"][data-member=\"EX2\"]")
                .unwrap(),
        )
        .unwrap();
    browser
        .wait_for(
            Duration::from_secs(2),
            "return document.getElementById('confirm').open;",
        )
        .unwrap();
    let input = browser.find("#token").unwrap();
    browser.type_into(&input, "not-the-token").unwrap();
    browser.click(&browser.find("#go").unwrap()).unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            &result_says("bad", &["Drain EX2", "401"]),
        )
        .unwrap();
    assert_eq!(member_state(admin, "EX2").await, "active");

    // 4. Drain EX2 with the keyboard and the token: the API confirms.
    browser
        .eval(
            "document.querySelector('button[data-action=\"drain\"][data-member=\"EX2\"]').focus(); return true;",
            json!([]),
        )
        .unwrap();
    browser.press(webdriver::ENTER).unwrap();
    browser
        .wait_for(
            Duration::from_secs(2),
            "return document.getElementById('confirm').open \
             && document.activeElement.id === 'token' && document.activeElement.value === '';",
        )
        .unwrap();
    browser.press(TOKEN).unwrap();
    browser.press(webdriver::ENTER).unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            &result_says("ok", &["Drain EX2", "EX2 is draining"]),
        )
        .unwrap();
    assert_eq!(member_state(admin, "EX2").await, "draining");
    wait_rows(
        &browser,
        Duration::from_secs(3),
        "EX1=unhealthy EX2=draining",
    )
    .unwrap();
    // The token stays in the page's memory only.
    let stored = browser
        .eval(
            "return [localStorage.length, sessionStorage.length, document.cookie];",
            json!([]),
        )
        .unwrap();
    assert_eq!(stored, json!([0, 0, ""]));

    if let Some(path) = &screenshot_to {
        // owa has no member now (down on EX1, EX2 drained): its requests
        // get 503, and the errors show for some seconds.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let height = browser
            .eval(
                "document.activeElement.blur(); \
                 document.querySelectorAll('.scroll').forEach(e => { e.scrollLeft = 0; }); \
                 return document.documentElement.scrollHeight;",
                json!([]),
            )
            .unwrap();
        // The whole page (the window's height counts some pixels that the
        // page does not get), then the window as it was.
        let height = height.as_u64().unwrap_or(1000).clamp(600, 4000) as u32;
        browser.resize(1280, height + 120).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        screenshot(&browser, path);
        browser.resize(1280, 1000).unwrap();
    }

    // 5. Activate EX2 again by a click (the token is remembered).
    browser
        .click(
            &browser
                .find("button[data-action=\"activate\"][data-member=\"EX2\"]")
                .unwrap(),
        )
        .unwrap();
    browser
        .wait_for(
            Duration::from_secs(2),
            &format!(
                "return document.getElementById('confirm').open && document.getElementById('token').value === {};",
                json!(TOKEN)
            ),
        )
        .unwrap();
    browser.click(&browser.find("#go").unwrap()).unwrap();
    browser
        .wait_for(
            Duration::from_secs(5),
            &result_says("ok", &["Activate EX2", "EX2 is active"]),
        )
        .unwrap();
    assert_eq!(member_state(admin, "EX2").await, "active");

    // 6. Move a database's active copy: the API's answer is shown (an
    // error until the array has POST /api/databases/{name}/move-active).
    browser
        .click(
            &browser
                .find("button[data-action=\"move-active\"][data-database=\"DB01\"]")
                .unwrap(),
        )
        .unwrap();
    browser
        .wait_for(
            Duration::from_secs(2),
            "return document.getElementById('confirm').open && !document.getElementById('target-row').hidden;",
        )
        .unwrap();
    browser
        .eval(
            "document.getElementById('target').value = 'EX2'; return true;",
            json!([]),
        )
        .unwrap();
    browser.click(&browser.find("#go").unwrap()).unwrap();
    browser
        .wait_for(
            Duration::from_secs(10),
            "const r = document.getElementById('result'); \
             return r.textContent.includes('Move DB01 to EX2') && r.dataset.kind !== 'pending';",
        )
        .unwrap();
    let said = browser
        .eval(
            "return document.getElementById('result').textContent;",
            json!([]),
        )
        .unwrap();
    eprintln!("move-active: the page says {said}");

    // 7. EX1 killed with SIGKILL: the page shows it down within 3 s.
    let (status, _) = http_send(lab.mocks[0].1, "POST", "/mock/heal/owa", "", &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    wait_rows(&browser, Duration::from_secs(5), "EX1=healthy EX2=healthy").unwrap();
    lab.mocks[0].0.kill9();
    let killed = Instant::now();
    wait_rows(&browser, Duration::from_secs(3), "EX1=down EX2=healthy")
        .unwrap_or_else(|e| panic!("EX1 not shown down within 3 s of kill -9: {e}"));
    let shown_down = killed.elapsed();
    eprintln!("page shows EX1 down {shown_down:?} after kill -9");
    assert!(shown_down <= Duration::from_secs(3));

    // 8. What the API does not give yet (database copies, failovers, SMTP
    // hubs, blocked requests) is drawn once it does: answers of that shape,
    // put in place of the API's in the page, with markup in a name that
    // must stay text.
    browser.eval(FAKE_ANSWERS, json!([])).unwrap();
    let probe = "const db = document.querySelector('#databases article[data-database=\"DB01\"]'); \
        const hostile = Array.from(document.querySelectorAll('#databases article h3')).map(e => e.textContent); \
        return db === null ? null : [db.dataset.active, \
          Array.from(db.querySelectorAll('tbody tr')).map(r => r.dataset.server + ':' + r.dataset.status + (r.classList.contains('mounted') ? '*' : '')).join(' '), \
          db.textContent.includes('Failovers3'), \
          db.querySelectorAll('button[data-action=\"move-active\"]').length, \
          hostile.includes('<img src=x onerror=\"window.pwned=1\">'), \
          document.querySelectorAll('#databases img').length + (window.pwned ? 100 : 0), \
          document.querySelector('#smtp tr[data-member=\"EX2\"] td:nth-of-type(2)').textContent, \
          document.querySelector('#blocked tr[data-rule=\"proxylogon-anonresource\"] td').textContent];";
    browser
        .wait_for_value(
            Duration::from_secs(5),
            probe,
            &json!([
                "EX1",
                "EX1:Mounted* EX2:Healthy",
                true,
                1,
                true,
                0,
                "2",
                "5"
            ]),
        )
        .unwrap();
    browser
        .eval("window.fetch = window.realFetch; return true;", json!([]))
        .unwrap();

    // 9. A narrow window: nothing wider than the window but the tables,
    // which scroll in their own boxes.
    browser.resize(400, 900).unwrap();
    let wide = "return [window.innerWidth, document.documentElement.scrollWidth, \
        Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 \
          && !e.closest('.scroll')).map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))];";
    if let Err(e) = browser.wait_for(
        Duration::from_secs(3),
        "return document.documentElement.scrollWidth <= window.innerWidth;",
    ) {
        panic!(
            "{e}\nwider than the window: {}",
            browser.eval(wide, json!([])).unwrap()
        );
    }

    // 10. No script error and no Content-Security-Policy violation.
    let console = browser.console().unwrap();
    let bad: Vec<_> = console
        .iter()
        .filter(|(level, text)| {
            text.contains("Content Security Policy")
                || (level == "SEVERE" && !text.contains("/api/") && !text.contains("favicon"))
        })
        .collect();
    assert!(bad.is_empty(), "console: {bad:#?}");

    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    drop(browser);
    eprintln!(
        "browser test: {:?} in all (browser start {started_browser:?})",
        began.elapsed()
    );
}

/// Replaces the page's `fetch` of `/api/databases` and `/api/overview` by
/// answers with what the admin API will give (DESIGN: database copies,
/// `active`, `failovers`; SMTP hubs; blocked requests by rule).
const FAKE_ANSWERS: &str = r#"
window.realFetch = window.fetch;
const answer = v => new Response(JSON.stringify(v), {status: 200, headers: {'Content-Type': 'application/json'}});
window.fetch = async (path, init) => {
  if (path === '/api/databases') {
    return answer([
      {name: 'DB01', rpc_client_access_server: 'mail.lab.com', active: 'EX1', failovers: 3, copies: [
        {server: 'EX2', activation_preference: 2, status: 'Healthy', copy_queue: 0, replay_queue: 1},
        {server: 'EX1', activation_preference: 1, status: 'Mounted', copy_queue: 0, replay_queue: 0}]},
      {name: '<img src=x onerror="window.pwned=1">', rpc_client_access_server: null, active: null, copies: [
        {server: 'EX1', activation_preference: 1, status: 'Failed', copy_queue: 12, replay_queue: 0}]}
    ]);
  }
  if (path === '/api/overview') {
    const v = await (await window.realFetch(path, init)).json();
    v.smtp = [{member: 'EX1', sessions: 0, connections: 7, up: false}, {member: 'EX2', sessions: 2, connections: 9, up: true}];
    v.blocked = {'proxylogon-anonresource': 5, 'autodiscover-ssrf': 0};
    return answer(v);
  }
  return window.realFetch(path, init);
};
return true;
"#;

/// Saves the window as PNG at `path`.
fn screenshot(browser: &Browser, path: &Path) {
    let png = browser.screenshot().unwrap();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());
}
