//! [`Browser`]: headless Chromium driven over the Chrome DevTools Protocol, for tests of the
//! pages bcfl serves.
//!
//! It starts Debian's `chromium` (or `$BCFL_CHROMIUM`) with `--headless --no-sandbox
//! --disable-gpu --disable-background-networking` and a throwaway profile, reads the DevTools
//! websocket address it prints, opens one tab and talks to it with plain JSON commands: no
//! driver, no browser download.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use bcfl_testkit::Browser;
//!
//! if let Err(why) = Browser::available() {
//!     eprintln!("SKIPPED: {why}");
//!     return;
//! }
//! let dir = tempfile::tempdir().unwrap();
//! let mut browser = Browser::launch(dir.path(), 1280, 900);
//! browser.navigate("http://127.0.0.1:8090/");
//! browser.wait_for("document.body.dataset.ready === '1'", Duration::from_secs(10));
//! assert_eq!(browser.eval("document.title"), "bcfl ledger audit");
//! browser.screenshot(&dir.path().join("page.png"));
//! ```

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::Spawned;

/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A headless Chromium with one tab; killed when dropped.
pub struct Browser {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    /// Every event received, in order (`Network.requestWillBeSent`, `Runtime.consoleAPICalled`,
    /// ...).
    events: Vec<Value>,
    process: Spawned,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.process.pid())
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// The Chromium binary: `$BCFL_CHROMIUM`, or `chromium`, `chromium-browser` or
    /// `google-chrome` on the `PATH`; the error says why there is none.
    pub fn available() -> Result<PathBuf, String> {
        if let Some(path) = std::env::var_os("BCFL_CHROMIUM") {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!("BCFL_CHROMIUM={} is not a file", path.display()))
            };
        }
        let dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                "no chromium on the PATH (Debian: apt-get install chromium; or set BCFL_CHROMIUM)"
                    .to_owned()
            })
    }

    /// Starts Chromium headless with a `width` x `height` window, its log in `log_dir`, and
    /// opens one blank tab with the page, runtime and network domains enabled. Panics when it
    /// is not installed ([`Browser::available`]) or does not start.
    pub fn launch(log_dir: &Path, width: u32, height: u32) -> Self {
        Self::launch_with(log_dir, width, height, &[])
    }

    /// [`Browser::launch`] with more Chromium flags, e.g. `--host-resolver-rules=MAP
    /// auditor.test 127.0.0.1` to reach a loopback server under a name that is not a secure
    /// context.
    pub fn launch_with(log_dir: &Path, width: u32, height: u32, flags: &[&str]) -> Self {
        let binary = Self::available().unwrap_or_else(|why| panic!("{why}"));
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut command = Command::new(binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                // Containers often have a small /dev/shm: write shared memory to /tmp instead.
                "--disable-dev-shm-usage",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(flags)
            .arg("about:blank");
        let mut process = Spawned::start("chromium", command, log_dir);
        let line = process.wait_for_line("DevTools listening on ", Duration::from_secs(60));
        let url = line
            .split("DevTools listening on ")
            .nth(1)
            .expect("the line names the address")
            .trim()
            .to_owned();
        let (socket, _) = tungstenite::connect(url.as_str())
            .unwrap_or_else(|e| panic!("connecting to Chromium's DevTools at {url}: {e}"));
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .expect("a read timeout");
        }
        let mut browser = Self {
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            process,
            _profile: profile,
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends `method` (to the tab when `session` is given) and waits for its result; events
    /// that arrive meanwhile are kept. Panics on an error answer.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "{method}: no answer in {COMMAND_TIMEOUT:?}"
            );
            let text = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => panic!(
                    "{method}: the DevTools connection failed: {e}\n{}",
                    self.process.log_text()
                ),
            };
            let value: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if value["id"] == id {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    /// Calls `method` on the tab.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Opens `url` in the tab and waits for its load event.
    pub fn navigate(&mut self, url: &str) {
        let seen = self.events.len();
        let result = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = result.get("errorText") {
            panic!("navigating to {url}: {error}");
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while !self.events[seen..]
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            assert!(Instant::now() < deadline, "{url} did not load");
            // Any cheap command reads the events that arrived meanwhile.
            self.eval("0");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of the JavaScript expression `expression` in the page (promises awaited).
    /// Panics when it throws.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy in the page and returns its value; panics with the
    /// page's text after `timeout`.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("waited {timeout:?} for {expression}; the page says:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Chooses `files` in the file input that `selector` finds (its `input` and `change`
    /// events fire, as when a user picks them).
    pub fn set_files(&mut self, selector: &str, files: &[&Path]) {
        let document = self.call("DOM.getDocument", json!({}));
        let node = self.call(
            "DOM.querySelector",
            json!({"nodeId": document["root"]["nodeId"], "selector": selector}),
        );
        assert_ne!(node["nodeId"], 0, "no element matches {selector}");
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({"nodeId": node["nodeId"], "files": files}),
        );
    }

    /// Writes a PNG of the whole page (beyond the window) to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let data = shot["data"].as_str().expect("PNG data");
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("DevTools sends base64");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// The URLs the tab requested so far.
    pub fn requested_urls(&mut self) -> Vec<String> {
        self.eval("0");
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// The messages the page logged to its console, and its uncaught exceptions.
    pub fn console(&mut self) -> Vec<String> {
        self.eval("0");
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.consoleAPICalled" => Some(format!(
                    "console.{}: {}",
                    e["params"]["type"].as_str().unwrap_or("?"),
                    e["params"]["args"]
                )),
                "Runtime.exceptionThrown" => {
                    Some(format!("exception: {}", e["params"]["exceptionDetails"]))
                }
                _ => None,
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Let Chromium end its own helper processes; the process guard kills what is left.
        let close = json!({"id": u64::MAX, "method": "Browser.close"}).to_string();
        let _ = self.socket.send(Message::text(close));
        let _ = self.process.wait(Duration::from_secs(5));
    }
}
