//! The owner of a run's record: keeps it up to date while the run goes (for `pipe ui` and `pipe
//! show`), fills it in from the stages' results at the end (stages, metrics, warnings, status,
//! duration), publishes the run's reports, and writes it.

use std::sync::{Mutex, mpsc};
use std::time::{Duration, SystemTime};

use super::events::{Event, Observer};
use super::outcome::{StageResult, Status};
use super::workspace::Workspace;
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::records::{self, RunRecord, RunStatus, StageRecord};

/// How often a running record is rewritten while stages finish.
const LIVE_WRITES_EVERY: Duration = Duration::from_secs(1);

/// An observer that passes every event on and keeps the stages finished so far, which
/// [`Live::keep_written`] writes into the running record every [`LIVE_WRITES_EVERY`] (a run faster
/// than that is written at its start and end only).
pub struct Live<'a> {
    ws: &'a Workspace,
    pipeline: &'a Pipeline,
    inner: &'a dyn Observer,
    /// The record so far (its stages' lines without their outputs, which the final record has),
    /// and whether it changed since it was last written.
    state: Mutex<(RunRecord, bool)>,
}

impl<'a> Live<'a> {
    /// Keeps `record` (as written at the run's start) up to date, passing events on to `inner`.
    pub fn new(
        ws: &'a Workspace,
        pipeline: &'a Pipeline,
        record: &RunRecord,
        inner: &'a dyn Observer,
    ) -> Live<'a> {
        Live {
            ws,
            pipeline,
            inner,
            state: Mutex::new((record.clone(), false)),
        }
    }

    /// Writes the record whenever it changed, every [`LIVE_WRITES_EVERY`], until `stop` is
    /// dropped (at once, so a fast run does not wait).
    pub fn keep_written(&self, stop: mpsc::Receiver<()>) {
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(LIVE_WRITES_EVERY) {
            let mut state = self.state.lock().expect("live record lock");
            let (record, changed) = &mut *state;
            if *changed {
                // A record that cannot be written now is written at the end, or the run fails then.
                let _ = self.ws.runs.write(record);
                *changed = false;
            }
        }
    }
}

impl Observer for Live<'_> {
    fn on(&self, event: Event<'_>) {
        if let Event::Finished(result) = event {
            let mut state = self.state.lock().expect("live record lock");
            let (record, changed) = &mut *state;
            record.stages.push(stage_line(self.pipeline, result));
            if let Some(m) = &result.metrics {
                record.metrics.insert(result.name.clone(), m.clone());
            }
            *changed = true;
        }
        self.inner.on(event);
    }
}

/// Fills in a run record from its stages' results (stages, metrics, warnings, status, duration),
/// writes the reports and the record.
pub fn complete(
    ws: &Workspace,
    pipeline: &Pipeline,
    results: &[StageResult],
    record: &mut RunRecord,
    started: SystemTime,
    cancelled: bool,
) -> Result<(), Error> {
    for r in results {
        record
            .warnings
            .extend(r.warnings.iter().map(|w| format!("{}: {w}", r.name)));
        if let Some(m) = &r.metrics {
            record.metrics.insert(r.name.clone(), m.clone());
        }
    }
    record.stages = results.iter().map(|r| stage_record(pipeline, r)).collect();
    record.status = if cancelled {
        RunStatus::Cancelled
    } else if results.iter().any(|r| r.status == Status::Failed) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    let now = SystemTime::now();
    record.finished_at = Some(records::rfc3339(now));
    record.duration_s = now
        .duration_since(started)
        .unwrap_or_default()
        .as_secs_f64();
    publish_reports(ws, pipeline, results, record);
    ws.runs
        .write(record)
        .map_err(|e| Error::Io(format!("cannot write run record: {e}")))
}

/// Writes `runs/<id>/report/` for each report stage: around its figures when it ran or was restored,
/// from the run record alone when it did not (a failed run). A report that cannot be written is a
/// warning, never a failed run.
fn publish_reports(
    ws: &Workspace,
    pipeline: &Pipeline,
    results: &[StageResult],
    record: &mut RunRecord,
) {
    for result in results {
        let Some(stage) = pipeline.stages.iter().find(|s| s.name == result.name) else {
            continue;
        };
        let Some(figures) = stage.report_figures() else {
            continue;
        };
        let figures = ws.root.join(figures);
        let figures =
            matches!(result.status, Status::Ran | Status::Cached).then_some(figures.as_path());
        let report_dir = ws.runs.run_dir(&record.id).report();
        if let Err(e) = crate::report::markdown::publish(&report_dir, figures, record) {
            record.warnings.push(format!(
                "{}: cannot write the run report: {e:#}",
                stage.name
            ));
        }
    }
}

/// A stage's line in `run.json`.
pub fn stage_record(pipeline: &Pipeline, r: &StageResult) -> StageRecord {
    StageRecord {
        outputs: r
            .outputs
            .iter()
            .map(|(p, t)| (p.clone(), t.hash.clone()))
            .collect(),
        ..stage_line(pipeline, r)
    }
}

/// A stage's line without its outputs (cheap: a running record's).
fn stage_line(pipeline: &Pipeline, r: &StageResult) -> StageRecord {
    let stage = &pipeline.stages[r.index];
    StageRecord {
        name: r.name.clone(),
        kind: stage.kind_name().to_string(),
        status: r.status,
        key: r.key.clone(),
        duration_s: r.duration_s,
        saved_s: r.saved_s,
        reason: r.reason.clone(),
        outputs: Default::default(),
        exit_code: r.exit_code,
        error: r.error.clone(),
        job_id: r.job_id.clone(),
    }
}
