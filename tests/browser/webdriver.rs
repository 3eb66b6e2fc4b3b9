//! A small W3C WebDriver client for the browser tests: it starts
//! `chromedriver` (Debian's `chromium-driver`) on an ephemeral port and
//! drives headless Chromium (Debian's `chromium`) through its JSON-over-HTTP
//! API. Blocking and std-only (HTTP/1.1 with Content-Length, one connection
//! per command), so it can also clean up in `Drop`.
//!
//! Every command is bounded: connect and read time out after
//! [`COMMAND_TIMEOUT`]. Chromedriver runs in its own process group, and the
//! group (it and the Chromium it started) is killed when the [`Browser`] is
//! dropped, also when a test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Longest wait for one WebDriver command (navigation included): 30 s.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for chromedriver to say it listens: 20 s.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The WebDriver code of the Enter key.
pub const ENTER: &str = "\u{E007}";

/// Where the browser and its driver are: `CASARRAY_CHROMIUM` and
/// `CASARRAY_CHROMEDRIVER`, else `/usr/bin/chromium` and
/// `/usr/bin/chromedriver`. `Err` says what is missing.
pub fn locate() -> Result<(PathBuf, PathBuf), String> {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = pick("CASARRAY_CHROMIUM", "/usr/bin/chromium");
    let driver = pick("CASARRAY_CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<String> = [&chromium, &driver]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok((chromium, driver))
    } else {
        Err(format!(
            "{} not found (apt-get install chromium chromium-driver, or set CASARRAY_CHROMIUM / CASARRAY_CHROMEDRIVER)",
            missing.join(" and ")
        ))
    }
}

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and
    /// a `width` x `height` window.
    pub fn start(
        chromium: &PathBuf,
        chromedriver: &PathBuf,
        width: u32,
        height: u32,
    ) -> Result<Browser, String> {
        let mut driver = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromedriver.display()))?;
        let port = match read_port(&mut driver) {
            Ok(p) => p,
            Err(e) => {
                kill_group(&mut driver);
                return Err(e);
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let profile = tempfile::Builder::new()
            .prefix("casarray-chromium-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        // The flags that let Chromium run as root in a container with no
        // network beyond loopback, and start without reaching out.
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--password-store=basic".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
                "goog:loggingPrefs": {"browser": "ALL"},
                "timeouts": {"pageLoad": 30_000, "script": 10_000}
            }}
        });
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let v = browser.command("POST", "/session", Some(&caps))?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?
            .to_owned();
        Ok(browser)
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.session_cmd("POST", "/url", json!({ "url": url }))
            .map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the
    /// page and returns what it returns.
    pub fn eval(&self, script: &str, args: Value) -> Result<Value, String> {
        self.session_cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// The element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> Result<String, String> {
        let v = self.session_cmd(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": selector }),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element for {selector}: {v}"))
    }

    /// Clicks element `id` (as a user would: it must be visible).
    pub fn click(&self, id: &str) -> Result<(), String> {
        self.session_cmd("POST", &format!("/element/{id}/click"), json!({}))
            .map(drop)
    }

    /// Types `text` into element `id`.
    pub fn type_into(&self, id: &str, text: &str) -> Result<(), String> {
        self.session_cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .map(drop)
    }

    /// Presses and releases each key of `keys` on whatever has the focus
    /// (`ENTER` for Enter).
    pub fn press(&self, keys: &str) -> Result<(), String> {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": k.to_string()}));
            actions.push(json!({"type": "keyUp", "value": k.to_string()}));
        }
        self.session_cmd(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .map(drop)
    }

    /// Resizes the window.
    pub fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        self.session_cmd(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .map(drop)
    }

    /// The window's content as PNG.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let v = self.session_cmd("GET", "/screenshot", Value::Null)?;
        let b64 = v.as_str().ok_or("screenshot: no data")?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| e.to_string())
    }

    /// The browser console's messages so far (level and text), when the
    /// driver keeps them.
    pub fn console(&self) -> Result<Vec<(String, String)>, String> {
        let v = self.session_cmd("POST", "/se/log", json!({ "type": "browser" }))?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// Polls `script` until it returns `true`, at most `limit`; the last
    /// value it returned otherwise (for the failure message).
    pub fn wait_for(&self, limit: Duration, script: &str) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < limit {
            match self.eval(script, json!([])) {
                Ok(Value::Bool(true)) => return Ok(start.elapsed()),
                Ok(v) => last = v,
                Err(e) => last = Value::String(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "not true within {limit:?}: {script}\n  last: {last}"
        ))
    }

    /// Polls `script` until it returns `expected`, at most `limit`; the
    /// last value it returned otherwise.
    pub fn wait_for_value(
        &self,
        limit: Duration,
        script: &str,
        expected: &Value,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < limit {
            match self.eval(script, json!([])) {
                Ok(v) if &v == expected => return Ok(start.elapsed()),
                Ok(v) => last = v,
                Err(e) => last = Value::String(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "not {expected} within {limit:?}, last {last}: {script}"
        ))
    }

    fn session_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let body = (method != "GET").then_some(&body);
        self.command(method, &path, body)
    }

    /// One WebDriver command; its `value`, or the driver's error.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let (status, v) = http(self.addr, method, path, body)?;
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{method} {path}: {status} {}: {}",
                v["value"]["error"].as_str().unwrap_or("?"),
                v["value"]["message"].as_str().unwrap_or("?")
            ))
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = http(self.addr, "DELETE", &path, None);
        }
        kill_group(&mut self.driver);
    }
}

/// Kills chromedriver's process group (it and the browser it started).
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: a plain kill(2) of the group this test started.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// Reads chromedriver's "started successfully on port N." line.
fn read_port(driver: &mut Child) -> Result<u16, String> {
    let stdout = driver.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // "Starting ChromeDriver ... on port 0" comes first.
            let port = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|p| p.trim().trim_end_matches('.').parse::<u16>().ok())
                .filter(|p| *p != 0);
            if let Some(p) = port {
                let _ = tx.send(p);
            }
        }
    });
    rx.recv_timeout(START_TIMEOUT)
        .map_err(|_| format!("chromedriver did not say its port within {START_TIMEOUT:?}"))
}

/// One HTTP/1.1 request with a JSON body; (status, JSON answer).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let err = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT).map_err(err)?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(err)?;
    stream
        .set_write_timeout(Some(COMMAND_TIMEOUT))
        .map_err(err)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(err)?;
    stream.write_all(body.as_bytes()).map_err(err)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(err)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(err)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut buf = vec![0; length];
    reader.read_exact(&mut buf).map_err(err)?;
    let v = serde_json::from_slice(&buf).unwrap_or(Value::Null);
    Ok((status, v))
}
