//! The only terminal writer for runs: one line per finished stage; on a terminal, progress bars
//! (indicatif) for the run and for each stage that reports its progress (training steps, images),
//! which also keep moving while a Slurm run waits for its jobs; plain lines otherwise (in CI, in a
//! file). Colours unless `NO_COLOR` is set or stderr is not a terminal; aligned tables for the listing
//! commands.

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::errln;
use crate::builtin::Progress;
use crate::pipeline::{Pipeline, Stage};
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
    name_width: usize,
    /// The bars, when stderr is a terminal.
    bars: Option<Bars>,
    /// Put before every line (the run's place in a sweep whose runs go at once).
    label: String,
}

/// The live part of a terminal: the run's bar and one bar per stage reporting progress.
struct Bars {
    multi: MultiProgress,
    run: ProgressBar,
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    running: BTreeSet<String>,
    stages: HashMap<String, ProgressBar>,
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
    /// A reporter for the stages of `pipeline` (names aligned to the longest, up to 40 columns).
    pub fn new(verbosity: Verbosity, pipeline: &Pipeline) -> Terminal {
        let live = std::io::stderr().is_terminal() && verbosity > Verbosity::Quiet;
        let name_width = pipeline
            .stages
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0)
            .min(40);
        Terminal {
            verbosity,
            color: use_color(),
            name_width,
            bars: live.then(|| Bars::new(pipeline.stages.len())),
            label: String::new(),
        }
    }

    /// The same with every line labelled and no bars: for one of several runs that write to the
    /// terminal at once.
    pub fn labelled(self, label: String) -> Terminal {
        Terminal {
            bars: None,
            label,
            ..self
        }
    }

    /// Prints a message line (above the bars, if any).
    pub fn line(&self, text: &str) {
        match &self.bars {
            // A reader of stderr that went away (`pipe run 2>&1 | head`) does not stop the run; the
            // stages' logs keep their lines.
            Some(bars) => bars.multi.suspend(|| errln!("{text}")),
            None => errln!("{}{text}", self.label),
        }
    }

    /// Prints a warning.
    pub fn warn(&self, text: &str) {
        self.line(&format!("{} {text}", paint(self.color, "33;1", "warning:")));
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

impl Bars {
    fn new(total: usize) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let run = multi.add(ProgressBar::new(total as u64));
        run.set_style(
            ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed} {wide_msg}")
                .expect("a valid template"),
        );
        run.enable_steady_tick(Duration::from_millis(120));
        Bars {
            multi,
            run,
            state: Mutex::new(BarState::default()),
        }
    }

    fn started(&self, stage: &str) {
        let mut state = self.state.lock().expect("bar state");
        state.running.insert(stage.to_string());
        self.show_running(&state);
    }

    fn finished(&self, result: &StageResult) {
        let mut state = self.state.lock().expect("bar state");
        state.running.remove(&result.name);
        if let Some(bar) = state.stages.remove(&result.name) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if result.status != Status::Queued {
            self.run.inc(1);
        }
        self.show_running(&state);
    }

    fn progress(&self, stage: &str, progress: &Progress) {
        let mut state = self.state.lock().expect("bar state");
        let bar = state.stages.entry(stage.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(progress.total));
            bar.set_style(
                ProgressStyle::with_template("  {prefix} [{bar:24}] {pos}/{len} {msg} (ETA {eta})")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{stage} ({})", progress.unit));
            bar
        });
        bar.set_length(progress.total);
        bar.set_position(progress.done);
        bar.set_message(progress.message.clone());
    }

    fn show_running(&self, state: &BarState) {
        let names: Vec<&str> = state.running.iter().map(String::as_str).collect();
        self.run.set_message(if names.is_empty() {
            String::new()
        } else {
            format!("running: {}", names.join(", "))
        });
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.run.finish_and_clear();
    }
}

impl Observer for Terminal {
    fn on(&self, event: Event<'_>) {
        match event {
            Event::Started(stage) => self.started(stage),
            Event::Finished(result) => self.finished(result),
            Event::Progress { stage, progress } => {
                if let Some(bars) = &self.bars {
                    bars.progress(stage, progress);
                }
            }
            Event::Warning { stage, message } => self.warn(&format!("{stage}: {message}")),
        }
    }
}

impl Terminal {
    fn started(&self, stage: &Stage) {
        if let Some(bars) = &self.bars {
            bars.started(&stage.name);
        }
    }

    fn finished(&self, r: &StageResult) {
        // Off a terminal (a log, CI) a cached stage has no line of its own: the run's closing line
        // counts them, and `-v` lists them.
        let show = match self.verbosity {
            Verbosity::Quiet => r.status == Status::Failed,
            Verbosity::Normal => r.status != Status::Cached || self.bars.is_some(),
            Verbosity::Verbose => true,
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
        if let Some(bars) = &self.bars {
            bars.finished(r);
        }
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

/// Says, on stderr, that another `pipe run` holds the workspace (`holder`: who, when known).
pub(super) fn wait_message(holder: &str) {
    let who = if holder.is_empty() {
        String::new()
    } else {
        format!(" ({holder})")
    };
    errln!("pipe: another pipe run{who} is using this workspace; waiting for it to finish");
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
