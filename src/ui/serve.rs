//! `pipe ui`: serves the pages and the files under `runs/` on a local address, one thread per
//! connection, read-only; `pipe ui --export DIR` writes the same pages as static files.

use std::fs;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::files;
use super::http::{self, Request, Response};
use super::pages::{self, Links};
use crate::records::{Runs, is_id};
use crate::util::net::is_loopback_host;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers every connection on `listener` until the process ends. On a loopback address, a request
/// must name a loopback host: a web page elsewhere cannot reach the runs through a DNS name that
/// resolves here (DNS rebinding).
pub fn serve(runs: &Runs, listener: TcpListener) -> io::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
    std::thread::scope(|scope| {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
            scope.spawn(move || {
                // A client that goes away mid-answer is its own business.
                let _ = answer(runs, stream, loopback);
            });
        }
    });
    Ok(())
}

fn answer(runs: &Runs, mut stream: TcpStream, loopback: bool) -> io::Result<()> {
    let (response, head) = match http::read_request(&stream) {
        Ok(Some(request)) if loopback && !is_loopback_name(&request.host) => (
            Response::error(403, "this dashboard answers to localhost only"),
            false,
        ),
        Ok(Some(request)) => (respond(runs, &request), request.method == "HEAD"),
        Ok(None) => return Ok(()),
        Err(e) => (Response::error(400, &e.to_string()), false),
    };
    http::write_response(&mut stream, &response, head)
}

/// Whether a `Host` names this machine's loopback (or is absent, as from a plain HTTP/1.0 client).
fn is_loopback_name(host: &str) -> bool {
    host.is_empty() || is_loopback_host(host)
}

/// The answer to one request.
pub fn respond(runs: &Runs, request: &Request) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::error(405, "the dashboard is read-only");
    }
    let path = request.path.as_str();
    let html = |text: String| Response::ok("text/html; charset=utf-8", text.into_bytes());
    let links = &Links::SERVED;
    match path.split_once('/').map(|(_, rest)| rest).unwrap_or("") {
        "" => {
            let (records, warnings) = runs.list();
            html(pages::runs(links, &records, &warnings))
        }
        "assets/app.css" => Response::ok("text/css; charset=utf-8", CSS.into()),
        "assets/app.js" => Response::ok("text/javascript; charset=utf-8", JS.into()),
        "compare" => match compare_ids(&request.query) {
            Some(ids) => {
                compare_page(runs, links, &ids).map_or_else(|why| Response::error(404, &why), html)
            }
            None => Response::error(400, "compare needs ?runs=ID,ID"),
        },
        rest => {
            if let Some(id) = rest.strip_prefix("run/") {
                run_page(runs, links, id).map_or_else(|why| Response::error(404, &why), html)
            } else if let Some(id) = rest.strip_prefix("sweep/") {
                sweep_page(runs, links, id).map_or_else(|why| Response::error(404, &why), html)
            } else if let Some(file) = rest.strip_prefix("runs/") {
                match files::resolve(runs.dir(), file).and_then(|full| {
                    fs::read(&full)
                        .map(|bytes| (full, bytes))
                        .map_err(|e| files::Refusal {
                            status: 404,
                            why: e.to_string(),
                        })
                }) {
                    Ok((full, bytes)) => Response::ok(files::content_type(&full), bytes),
                    Err(refusal) => Response::error(refusal.status, &refusal.why),
                }
            } else {
                Response::error(404, "no such page")
            }
        }
    }
}

fn compare_ids(query: &str) -> Option<Vec<String>> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("runs="))?;
    let decoded = http::percent_decode(value)?;
    let ids: Vec<String> = decoded.split(',').map(str::to_string).collect();
    (ids.len() >= 2 && ids.iter().all(|id| is_id(id))).then_some(ids)
}

/// Names of the files in `dir` with one of `extensions`, sorted.
fn files_in(dir: &Path, extensions: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| extensions.is_empty() || extensions.iter().any(|x| n.ends_with(x)))
        .collect();
    names.sort();
    names
}

fn run_page(runs: &Runs, links: &Links, id: &str) -> Result<String, String> {
    if !is_id(id) {
        return Err("not a run id".into());
    }
    let record = runs.read(id)?;
    let dir = runs.run_dir(id);
    let stage_metrics = runs.stage_metrics(id);
    // A run older than the metrics logs shows the history its report kept instead.
    let history = stage_metrics
        .is_empty()
        .then(|| crate::report::history::kept(&dir.report(), id))
        .flatten();
    let files = pages::RunFiles {
        report: fs::read_to_string(dir.report().join("report.md")).ok(),
        figures: files_in(&dir.report(), &[".png", ".svg"]),
        logs: files_in(&dir.logs(), &[]),
        stage_metrics,
        history,
    };
    Ok(pages::run(links, &record, &files))
}

fn sweep_page(runs: &Runs, links: &Links, id: &str) -> Result<String, String> {
    if !is_id(id) {
        return Err("not a sweep id".into());
    }
    let sweep = runs.resolve_sweep(id)?;
    let records = runs.sweep_runs(&sweep);
    let histories = records
        .iter()
        .filter_map(|r| {
            let kept = crate::report::history::kept(&runs.run_dir(&r.id).report(), &r.id)?;
            Some((r.id.clone(), kept))
        })
        .collect();
    Ok(pages::sweep(links, &sweep, &records, &histories))
}

fn compare_page(runs: &Runs, links: &Links, ids: &[String]) -> Result<String, String> {
    let records = ids
        .iter()
        .map(|id| runs.read(id))
        .collect::<Result<Vec<_>, _>>()?;
    let histories: Vec<_> = ids
        .iter()
        .map(|id| crate::report::history::kept(&runs.run_dir(id).report(), id))
        .collect();
    Ok(pages::compare(links, &records, &histories))
}

/// Writes every page into `dir` (`index.html`, `run/<id>.html`, `sweep/<id>.html`), the assets,
/// and the files the pages show (report figures, logs, records) under `dir/runs/`. Returns how
/// many pages it wrote.
pub fn export(runs: &Runs, dir: &Path) -> io::Result<usize> {
    let top = Links {
        exported: true,
        root: "",
    };
    let nested = Links {
        exported: true,
        root: "../",
    };
    let (records, warnings) = runs.list();
    for sub in ["assets", "run", "sweep"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::write(dir.join("assets/app.css"), CSS)?;
    fs::write(dir.join("assets/app.js"), JS)?;
    fs::write(
        dir.join("index.html"),
        pages::runs(&top, &records, &warnings),
    )?;
    let mut pages_written = 1;
    let mut sweeps = std::collections::BTreeSet::new();
    for record in &records {
        let page = run_page(runs, &nested, &record.id).map_err(io::Error::other)?;
        fs::write(dir.join(format!("run/{}.html", record.id)), page)?;
        copy_shown(runs, dir, &record.id)?;
        pages_written += 1;
        sweeps.extend(record.sweep.clone());
    }
    for id in sweeps {
        if let Ok(page) = sweep_page(runs, &nested, &id) {
            fs::write(dir.join(format!("sweep/{id}.html")), page)?;
            copy_shown(runs, dir, &id)?;
            pages_written += 1;
        }
    }
    Ok(pages_written)
}

/// Copies what a run's or sweep's page links to: its record, report figures and logs.
fn copy_shown(runs: &Runs, dir: &Path, id: &str) -> io::Result<()> {
    let run_dir = runs.run_dir(id);
    let target = dir.join("runs").join(id);
    for (from, sub, extensions) in [
        (run_dir.report(), "report", &[".png", ".svg"][..]),
        (run_dir.logs(), "logs", &[][..]),
    ] {
        for name in files_in(&from, extensions) {
            fs::create_dir_all(target.join(sub))?;
            fs::copy(from.join(&name), target.join(sub).join(&name))?;
        }
    }
    for record in [run_dir.record(), run_dir.sweep_record()] {
        if record.is_file() {
            fs::create_dir_all(&target)?;
            fs::copy(&record, target.join(record.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}
