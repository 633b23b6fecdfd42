//! `pipe ui` over HTTP: the pages a user reads, the files they link to, and every way out of
//! `runs/` refused; `--export` writes the same pages with links that resolve on disk.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use crate::browser::{Session, browse, chromium};
use crate::test::Ws;

/// Two runs that differ in `lr`, with metrics and a failed third.
fn workspace() -> Ws {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        r#"
params:
  lr: 0.1
stages:
  train:
    cmd: >-
      awk 'BEGIN { printf "{\"accuracy\": %.2f}", 0.5 + ${params.lr} }' > metrics.json && echo trained
    metrics: [metrics.json]
"#,
    );
    ws.ok(&["run", "p.yaml"]);
    ws.ok(&["run", "p.yaml", "--set", "lr=0.3"]);
    ws
}

/// A running `pipe ui` on a free port, stopped when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(ws: &Ws) -> Server {
        let mut child = ws
            .command(&["ui", "--port", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, address }
    }

    /// The raw response to `request_line` (sent as is: no client tidies the path first).
    fn send(&self, request_line: &str) -> (u16, String, String) {
        self.send_to_host(request_line, "localhost:8321")
    }

    /// The same, naming `host` in the `Host` header.
    fn send_to_host(&self, request_line: &str, host: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        write!(stream, "{request_line}\r\nHost: {host}\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        self.send(&format!("GET {path} HTTP/1.1"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ids(ws: &Ws) -> Vec<String> {
    let listed: serde_json::Value =
        serde_json::from_str(&ws.ok(&["runs", "--json"]).stdout).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pages_show_runs_their_params_that_differ_metrics_and_logs() {
    let ws = workspace();
    let server = Server::start(&ws);
    let ids = run_ids(&ws);
    let (status, head, runs) = server.get("/");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(runs.contains(&ids[0]) && runs.contains(&ids[1]), "{runs}");
    assert!(
        runs.contains("<th scope=\"col\" class=\"param\">lr</th>"),
        "lr differs: {runs}"
    );
    assert!(
        runs.contains("0.8") && runs.contains("0.6"),
        "accuracies: {runs}"
    );
    let (status, _, run) = server.get(&format!("/run/{}", ids[0]));
    assert_eq!(status, 200);
    assert!(
        run.contains("train.accuracy") && run.contains("0.8"),
        "{run}"
    );
    let log = format!("/runs/{}/logs/train.stdout", ids[0]);
    assert!(run.contains(&format!("href=\"{log}\"")), "{run}");
    let (status, head, text) = server.get(&log);
    assert_eq!(status, 200);
    assert!(
        head.contains("text/plain") && text.contains("trained"),
        "{head}{text}"
    );
    let (status, head, _) = server.get(&format!("/runs/{}/run.json", ids[0]));
    assert_eq!(status, 200);
    assert!(head.contains("application/json"), "{head}");
    let (status, _, compare) = server.get(&format!("/compare?runs={},{}", ids[0], ids[1]));
    assert_eq!(status, 200);
    assert!(
        compare.contains("(−0.200)") && compare.contains('★'),
        "{compare}"
    );
    let (status, _, js) = server.get("/assets/app.js");
    assert_eq!(status, 200);
    assert!(js.contains("sortable"));
}

#[test]
fn nothing_outside_runs_is_served_and_nothing_can_be_written() {
    let ws = workspace();
    ws.write("secret.txt", "secret");
    let id = &run_ids(&ws)[0];
    std::os::unix::fs::symlink(
        ws.file("secret.txt"),
        ws.file(&format!("runs/{id}/leak.txt")),
    )
    .unwrap();
    let server = Server::start(&ws);
    for (path, expected) in [
        ("/runs/../secret.txt", 400),
        ("/runs/%2e%2e/secret.txt", 400),
        ("/runs/%2E%2E/%2E%2E/etc/passwd", 400),
        ("/runs//etc/passwd", 400),
        ("/runs/x%5c..%5csecret.txt", 400),
        (&format!("/runs/{id}/leak.txt"), 403),
        (&format!("/runs/{id}"), 404),
        ("/run/..%2f..%2fsecret", 404),
        ("/nothing", 404),
    ] {
        let (status, _, body) = server.get(path);
        assert_eq!(status, expected, "{path}: {body}");
        assert!(
            !body.contains("secret\n") && body != "secret",
            "{path} leaked"
        );
    }
    let (status, _, _) = server.send_to_host("GET / HTTP/1.1", "attacker.example:8321");
    assert_eq!(status, 403, "a rebound DNS name is refused");
    let (status, _, _) = server.send_to_host("GET / HTTP/1.1", "127.0.0.1:8321");
    assert_eq!(status, 200);
    let (status, head, _) = server.send("POST / HTTP/1.1");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    let (status, head, body) = server.send("HEAD / HTTP/1.1");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Length: ") && body.is_empty(),
        "{head}"
    );
}

#[test]
fn an_export_is_the_same_pages_with_links_that_resolve_on_disk() {
    let ws = workspace();
    let out = ws.file("site");
    ws.ok(&["ui", "--export", out.to_str().unwrap()]);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    for id in run_ids(&ws) {
        assert!(
            index.contains(&format!("href=\"run/{id}.html\"")),
            "{index}"
        );
        let page = std::fs::read_to_string(out.join(format!("run/{id}.html"))).unwrap();
        for target in page
            .split("href=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
        {
            let on_disk = out.join("run").join(target);
            assert!(on_disk.exists(), "run/{id}.html links to missing {target}");
        }
    }
    assert!(out.join("assets/app.css").is_file());
}

#[test]
fn a_real_browser_renders_every_page_without_a_script_error() {
    let Some(browser) = chromium() else { return };
    let ws = workspace();
    ws.ok(&["run", "p.yaml", "--sweep", "lr=0.2,0.4"]);
    // Two runs whose reports keep a training history, for the compare page's curves.
    ws.write("h.yaml", crate::test::HISTORY_PIPELINE);
    ws.ok(&["run", "h.yaml", "--set", "seed=6"]);
    ws.ok(&["run", "h.yaml", "--set", "seed=8"]);
    let server = Server::start(&ws);
    let ids = run_ids(&ws);
    let sweep = ws.ok(&["runs", "--sweep", "latest", "--json"]).stdout;
    let sweep_id = serde_json::from_str::<serde_json::Value>(&sweep).unwrap()[0]["sweep"]
        .as_str()
        .unwrap()
        .to_string();
    let last = ids.len() - 1;
    let pages = [
        ("runs", "/".to_string(), ids[last].clone()),
        (
            "run",
            format!("/run/{}", ids[last]),
            "train.accuracy".to_string(),
        ),
        (
            "compare",
            format!("/compare?runs={},{}", ids[last], ids[last - 1]),
            "Params that differ".to_string(),
        ),
        (
            "sweep",
            format!("/sweep/{sweep_id}"),
            "By <code>lr</code>".to_string(),
        ),
        (
            "parallel",
            format!("/compare?runs={},{}", ids[last], ids[last - 1]),
            "Parallel coordinates".to_string(),
        ),
        (
            "curves",
            format!("/compare?runs={},{}", ids[1], ids[0]),
            "Validation curves".to_string(),
        ),
    ];
    // `PIPE_UI_SCREENSHOTS=docs/ui cargo test ... a_real_browser` refreshes the docs' screenshots.
    let shots = std::env::var_os("PIPE_UI_SCREENSHOTS").map(std::path::PathBuf::from);
    for (name, path, expected) in pages {
        let url = format!("http://{}{path}", server.address);
        let (dom, log) = browse(&browser, &url, None);
        assert!(dom.contains(&expected), "{name}: no {expected:?} in\n{dom}");
        match name {
            // Two runs in each of two charts, and a legend button per run.
            "curves" => {
                assert_eq!(dom.matches("<g class=\"series\"").count(), 4, "{dom}");
                assert_eq!(dom.matches("class=\"series-toggle\"").count(), 2, "{dom}");
            }
            // `lr` and the accuracy it gave, one line per run.
            "parallel" => {
                assert_eq!(dom.matches("<g class=\"series\"").count(), 2, "{dom}");
                assert_eq!(dom.matches("class=\"tick axis-name\"").count(), 2, "{dom}");
            }
            // The sweep's two runs folded under its row.
            "runs" => assert_eq!(dom.matches("class=\"member\" hidden").count(), 2, "{dom}"),
            // Each lr's accuracy: its mean ± sd as a bar, the better marked.
            "sweep" => {
                assert_eq!(dom.matches("<g class=\"spread\"").count(), 2, "{dom}");
                assert!(dom.contains("class=\"best\""), "{dom}");
            }
            _ => {}
        }
        assert!(
            dom.contains("data-ready=\"1\""),
            "{name}: app.js did not finish\n{log}"
        );
        assert!(
            !log.contains("Uncaught") && !log.contains("Refused to"),
            "{name}: the browser logged an error\n{log}"
        );
        if let Some(dir) = &shots {
            std::fs::create_dir_all(dir).unwrap();
            browse(&browser, &url, Some(&dir.join(format!("{name}.png"))));
        }
    }
}

#[test]
fn a_running_runs_page_shows_the_stages_finished_so_far() {
    let ws = Ws::new();
    ws.write(
        "p.yaml",
        "stages:\n  quick:\n    cmd: echo q > q.txt\n    outs: [q.txt]\n  slow:\n    cmd: sleep 8 && cat q.txt > s.txt\n    deps: [q.txt]\n    outs: [s.txt]\n",
    );
    let mut run = ws
        .command(&["run", "p.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server::start(&ws);
    // The record is rewritten each second while stages finish: `quick` shows before `slow` ends.
    let start = std::time::Instant::now();
    let page = loop {
        let ids = ws
            .ok(&["runs", "--json"])
            .stdout
            .contains("\"id\"")
            .then(|| run_ids(&ws));
        if let Some(ids) = ids {
            let (_, _, page) = server.get(&format!("/run/{}", ids[0]));
            if page.contains("<td>quick</td>") {
                break page;
            }
        }
        assert!(
            start.elapsed().as_secs() < 7,
            "the running record never showed `quick`"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        page.contains("data-live=\"1\"") && !page.contains("<td>slow</td>"),
        "{page}"
    );
    assert!(run.wait().unwrap().success());
    let (_, _, done) = server.get(&format!("/run/{}", run_ids(&ws)[0]));
    assert!(
        done.contains("<td>slow</td>") && !done.contains("data-live"),
        "{done}"
    );
}

#[test]
fn a_user_sorts_filters_opens_a_sweep_and_compares_what_they_picked() {
    let Some(browser) = chromium() else { return };
    let ws = workspace();
    ws.ok(&["run", "p.yaml", "--sweep", "lr=0.2,0.4"]);
    let server = Server::start(&ws);
    let mut page = Session::start(&browser);
    page.open(&format!("http://{}/", server.address));
    let visible_runs = "Array.from(document.querySelectorAll('#runs tr[data-run]'))\
                        .filter((r) => !r.hidden && !r.classList.contains('hidden') && r.offsetParent)\
                        .map((r) => r.cells[1].textContent.trim())";
    // The sweep is one row until opened; the two plain runs show.
    assert_eq!(page.eval(&format!("{visible_runs}.length")), 2);
    page.eval("document.querySelector('button.expand').click()");
    assert_eq!(page.eval(&format!("{visible_runs}.length")), 4);
    // Sorted by accuracy, lowest first: lr 0.1 (0.6), then the sweep (its mean 0.8 of lr 0.2 and
    // 0.4) with its runs sorted inside it, then lr 0.3 (0.8, after the sweep as before the sort).
    page.eval(
        "Array.from(document.querySelectorAll('#runs th')).find((h) => h.textContent === 'train.accuracy').click()",
    );
    let accuracies = page.eval(
        "Array.from(document.querySelectorAll('#runs tbody tr')).map((r) => r.cells[6].textContent)",
    );
    assert_eq!(
        accuracies,
        serde_json::json!(["0.600", "0.800 ± 0.141", "0.700", "0.900", "0.800"]),
    );
    // A filter keeps the rows that match it, and a sweep whose run matches.
    page.eval("const f = document.getElementById('filter'); f.value = '0.9'; f.dispatchEvent(new Event('input'))");
    assert_eq!(page.eval(&format!("{visible_runs}.length")), 1);
    page.eval("const g = document.getElementById('filter'); g.value = ''; g.dispatchEvent(new Event('input'))");
    // Two picked runs make the compare button lead to their comparison.
    page.eval(
        "for (const box of Array.from(document.querySelectorAll('#runs tr[data-run] input')).slice(0, 2)) box.click()",
    );
    assert_eq!(
        page.eval("document.getElementById('compare').disabled"),
        false
    );
    page.follow("document.getElementById('compare').click()");
    assert_eq!(
        page.eval("document.querySelector('h1').textContent"),
        "Comparison of 2 runs"
    );
    // The legend hides a run's line in the parallel coordinates, and shows it again.
    let hidden = "document.querySelectorAll('g.series[hidden]').length";
    page.eval("document.querySelector('button.series-toggle').click()");
    assert_eq!(page.eval(hidden), 1);
    page.eval("document.querySelector('button.series-toggle').click()");
    assert_eq!(page.eval(hidden), 0);
    assert!(page.errors.is_empty(), "script errors: {:?}", page.errors);
}

#[test]
fn a_trained_runs_page_shows_its_report_its_confusion_matrix_and_its_curves() {
    let Some(browser) = chromium() else { return };
    let ws = crate::model::trained();
    let id = ws.latest()["id"].as_str().unwrap().to_string();
    let server = Server::start(&ws);
    let (dom, log) = browse(
        &browser,
        &format!("http://{}/run/{id}", server.address),
        None,
    );
    assert!(dom.contains("data-ready=\"1\""), "{log}");
    // The report rendered, its figures from the run's folder, without its own params and stages.
    assert!(dom.contains("<h2>Bone fracture classification"), "{dom}");
    assert!(
        dom.contains(&format!("src=\"/runs/{id}/report/confusion_matrix.png\"")),
        "{dom}"
    );
    assert!(!dom.contains("<h3>Params</h3>"), "{dom}");
    // The confusion matrix as a table: its four counts add up to the test images.
    let run = ws.latest();
    let test_images = run["metrics"]["evaluate"]["test_images"].as_u64().unwrap();
    let counts: u64 = ["tp", "fp", "tn", "fn"]
        .iter()
        .map(|c| run["metrics"]["evaluate"]["confusion"][c].as_u64().unwrap())
        .sum();
    assert_eq!(counts, test_images);
    assert!(dom.contains("<table class=\"confusion\">"), "{dom}");
    // Train's metrics stream as curves: losses and accuracies, train and validation.
    assert!(dom.contains("Curves of <code>train</code>"), "{dom}");
    assert_eq!(dom.matches("<g class=\"series\"").count(), 4, "{dom}");
}

#[test]
fn a_sweeps_page_draws_each_groups_curves_with_their_band_and_their_numbers() {
    let ws = Ws::new();
    ws.write("h.yaml", crate::test::HISTORY_PIPELINE);
    // Validation accuracy at epoch 2 is 0.<seed>: each lr's group spans seeds 6 and 8.
    ws.ok(&["run", "h.yaml", "--sweep", "lr=1,2", "--sweep", "seed=6,8"]);
    let server = Server::start(&ws);
    let sweep: serde_json::Value =
        serde_json::from_str(&ws.ok(&["runs", "--sweep", "latest", "--json"]).stdout).unwrap();
    let id = sweep[0]["sweep"].as_str().unwrap();
    let (status, _, page) = server.get(&format!("/sweep/{id}"));
    assert_eq!(status, 200);
    // Two axes, two groups each, two charts per axis: a band around each group's mean.
    assert_eq!(page.matches("<polygon class=\"band\"").count(), 8, "{page}");
    assert!(
        page.contains("<td>lr=1</td><td>2</td><td>0.7000 [0.6000-0.8000]</td>"),
        "{page}"
    );
}
