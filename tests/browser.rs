//! Headless Chromium for the dashboard's tests: found on the machine (or the test skips with the
//! reason), a page's DOM after load or a screenshot of it, and a DevTools session over a pipe
//! (`--remote-debugging-pipe`: JSON messages ended by a NUL byte on file descriptors 3 and 4) that
//! loads pages, runs a script in them as a user's clicks would, and collects every script error.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Headless Chromium (`chromium`, or `PIPE_TEST_CHROMIUM`), or `None` with the reason printed.
pub fn chromium() -> Option<String> {
    let candidates = std::env::var("PIPE_TEST_CHROMIUM")
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(String::from));
    for candidate in candidates {
        let found = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(candidate);
        }
    }
    eprintln!(
        "skipping the browser test: no Chromium here (`.ci/run` installs Debian's `chromium`)"
    );
    None
}

/// The flags every headless run gets, with its own profile folder.
fn headless(browser: &str, profile: &std::path::Path) -> Command {
    let mut command = Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,900",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The page's DOM after load and Chromium's log; with `screenshot`, a PNG of it there.
pub fn browse(browser: &str, url: &str, screenshot: Option<&std::path::Path>) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut command = headless(browser, profile.path());
    command.args(["--enable-logging=stderr", "--v=0", "--timeout=10000"]);
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    let out = command.arg(url).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How long one DevTools command or page load may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// A DevTools session with one page of a headless Chromium, closed when dropped.
pub struct Session {
    child: Child,
    to_browser: std::fs::File,
    from_browser: Receiver<Value>,
    session: String,
    next_id: u64,
    /// The script errors and `console.error` lines seen so far.
    pub errors: Vec<String>,
    /// Whether the page's load event came since the last navigation.
    load_seen: bool,
    _profile: tempfile::TempDir,
}

impl Session {
    /// Starts Chromium with a pipe for DevTools and opens a blank page.
    pub fn start(browser: &str) -> Session {
        let profile = tempfile::tempdir().unwrap();
        let (commands_read, commands_write) = std::io::pipe().unwrap();
        let (events_read, events_write) = std::io::pipe().unwrap();
        let (child_in, child_out): (OwnedFd, OwnedFd) = (commands_read.into(), events_write.into());
        let (fd_in, fd_out) = (child_in.as_raw_fd(), child_out.as_raw_fd());
        let mut command = headless(browser, profile.path());
        command
            .arg("--remote-debugging-pipe")
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only `fcntl` and `dup2` run, which are async-signal-safe; they put the
        // pipes where Chromium reads (3) and writes (4) its DevTools messages.
        unsafe {
            command.pre_exec(move || {
                // Out of the way first, in case either pipe is already 3 or 4.
                let (high_in, high_out) = (
                    libc::fcntl(fd_in, libc::F_DUPFD, 10),
                    libc::fcntl(fd_out, libc::F_DUPFD, 10),
                );
                if high_in < 0
                    || high_out < 0
                    || libc::dup2(high_in, 3) < 0
                    || libc::dup2(high_out, 4) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop((child_in, child_out));
        let (send, from_browser) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(events_read);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                message.pop();
                let Ok(value) = serde_json::from_slice::<Value>(&message) else {
                    continue;
                };
                if send.send(value).is_err() {
                    return;
                }
            }
        });
        let mut session = Session {
            child,
            to_browser: std::fs::File::from(OwnedFd::from(commands_write)),
            from_browser,
            session: String::new(),
            next_id: 0,
            errors: Vec::new(),
            load_seen: false,
            _profile: profile,
        };
        let target = session.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = session.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        session.session = attached["sessionId"].as_str().unwrap().to_string();
        session.call("Runtime.enable", json!({}));
        session.call("Page.enable", json!({}));
        session
    }

    /// Notes an event that says a script failed.
    fn note(&mut self, event: &Value) {
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let details = &event["params"]["exceptionDetails"];
                self.errors.push(format!(
                    "{} {}",
                    details["text"], details["exception"]["description"]
                ));
            }
            Some("Runtime.consoleAPICalled") if event["params"]["type"] == "error" => {
                self.errors.push(event["params"]["args"].to_string());
            }
            Some("Page.loadEventFired") => self.load_seen = true,
            _ => {}
        }
    }

    /// The next message from the browser within the time left before `deadline`.
    fn receive(&mut self, deadline: Instant, waiting_for: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from_browser.recv_timeout(left) {
            Ok(message) => {
                self.note(&message);
                message
            }
            Err(RecvTimeoutError::Timeout) => panic!("Chromium did not answer {waiting_for}"),
            Err(RecvTimeoutError::Disconnected) => panic!("Chromium went away ({waiting_for})"),
        }
    }

    /// Sends a DevTools command and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to_browser.write_all(&bytes).unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let answer = self.receive(deadline, method);
            if answer["id"] == id {
                assert!(answer["error"].is_null(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Waits for the page's load event.
    fn loaded(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.load_seen {
            self.receive(deadline, "the load event");
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub fn open(&mut self, url: &str) {
        self.load_seen = false;
        self.call("Page.navigate", json!({"url": url}));
        self.loaded();
    }

    /// The value of `expression` (a script run in the page; a promise is awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Runs `expression`, which makes the page go to another, and waits until that one has loaded.
    pub fn follow(&mut self, expression: &str) {
        self.load_seen = false;
        self.eval(expression);
        self.loaded();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
