//! The only terminal writer for runs: one line per finished stage, a live "running: …" line on a
//! terminal (plain lines otherwise, e.g. in CI), colours unless `NO_COLOR` is set or stderr is not a
//! terminal, and aligned tables for the listing commands.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use crate::pipeline::Stage;
use crate::run::events::{Event, Observer};
use crate::run::outcome::{StageResult, Status};

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Failures and the final line only.
    Quiet,
    /// A line per stage.
    Normal,
    /// Also keys and warnings.
    Verbose,
}

/// Prints run progress to stderr.
pub struct Terminal {
    verbosity: Verbosity,
    color: bool,
    live: bool,
    name_width: usize,
    progress: Mutex<Progress>,
}

struct Progress {
    running: BTreeSet<String>,
    done: usize,
    total: usize,
}

/// Whether to colour output written to stderr.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `text` in ANSI colour `code` when `on`.
pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn status_color(status: Status) -> &'static str {
    match status {
        Status::Ran => "32",
        Status::Cached => "2",
        Status::Failed => "31;1",
        Status::Skipped => "33",
        Status::WillRun | Status::Queued | Status::Running => "36",
    }
}

impl Terminal {
    /// A reporter for `total` stages whose longest name is `name_width` long.
    pub fn new(verbosity: Verbosity, total: usize, name_width: usize) -> Terminal {
        let color = use_color();
        Terminal {
            verbosity,
            color,
            live: color && verbosity > Verbosity::Quiet,
            name_width,
            progress: Mutex::new(Progress {
                running: BTreeSet::new(),
                done: 0,
                total,
            }),
        }
    }

    /// Prints a message line (clearing the live line first).
    pub fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.live {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{text}");
    }

    /// Prints a warning.
    pub fn warn(&self, text: &str) {
        self.line(&format!("{} {text}", paint(self.color, "33;1", "warning:")));
    }

    fn redraw(&self, progress: &Progress) {
        if !self.live || progress.running.is_empty() {
            return;
        }
        let names: Vec<&str> = progress.running.iter().map(String::as_str).collect();
        let mut text = format!(
            "[{}/{}] running: {}",
            progress.done,
            progress.total,
            names.join(", ")
        );
        if text.len() > 100 {
            text.truncate(97);
            text.push_str("...");
        }
        let _ = write!(
            std::io::stderr().lock(),
            "\r\x1b[K{}",
            paint(self.color, "2", &text)
        );
    }

    /// A stage's line: status word, name, time and reason.
    pub fn stage_line(
        &self,
        name: &str,
        status: Status,
        duration_s: Option<f64>,
        reason: &str,
    ) -> String {
        let word = format!("{:<8}", status.word());
        let time = duration_s
            .map(|d| format!("{d:>7.2}s"))
            .unwrap_or_else(|| " ".repeat(8));
        format!(
            "  {} {:<width$} {time}  {}",
            paint(self.color, status_color(status), &word),
            name,
            paint(self.color, "2", reason),
            width = self.name_width
        )
    }
}

impl Observer for Terminal {
    fn on(&self, event: Event<'_>) {
        match event {
            Event::Started(stage) => self.started(stage),
            Event::Finished(result) => self.finished(result),
        }
    }
}

impl Terminal {
    fn started(&self, stage: &Stage) {
        let mut p = self.progress.lock().expect("progress lock");
        p.running.insert(stage.name.clone());
        self.redraw(&p);
    }

    fn finished(&self, r: &StageResult) {
        let mut p = self.progress.lock().expect("progress lock");
        p.running.remove(&r.name);
        if r.status != Status::Queued {
            p.done += 1;
        }
        let show = match self.verbosity {
            Verbosity::Quiet => r.status == Status::Failed,
            _ => true,
        };
        if show {
            let timed = matches!(r.status, Status::Ran | Status::Failed);
            let reason = match &r.job_id {
                Some(job) => format!("job {job}: {}", r.reason),
                None => r.reason.clone(),
            };
            self.line(&self.stage_line(&r.name, r.status, timed.then_some(r.duration_s), &reason));
            if let Some(error) = &r.error {
                for l in error.lines() {
                    self.line(&format!("           {l}"));
                }
            }
            if self.verbosity == Verbosity::Verbose
                && let Some(key) = &r.key
            {
                self.line(&format!("           key {key}"));
            }
        }
        for w in &r.warnings {
            self.warn(&format!("{}: {w}", r.name));
        }
        self.redraw(&p);
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "LONG"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONG\nxyz  1\n");
    }
}
