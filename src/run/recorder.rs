//! The owner of a run's record: fills it in from the stages' results (stages, metrics, warnings,
//! status, duration), publishes the run's reports, and writes it.

use std::time::SystemTime;

use super::outcome::{StageResult, Status};
use super::workspace::Workspace;
use crate::error::Error;
use crate::pipeline::Pipeline;
use crate::records::{self, RunRecord, RunStatus, StageRecord};

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
    let stage = &pipeline.stages[r.index];
    StageRecord {
        name: r.name.clone(),
        kind: stage.kind_name().to_string(),
        status: r.status,
        key: r.key.clone(),
        duration_s: r.duration_s,
        saved_s: r.saved_s,
        reason: r.reason.clone(),
        outputs: r
            .outputs
            .iter()
            .map(|(p, t)| (p.clone(), t.hash.clone()))
            .collect(),
        exit_code: r.exit_code,
        error: r.error.clone(),
        job_id: r.job_id.clone(),
    }
}
