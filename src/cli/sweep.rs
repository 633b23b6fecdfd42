//! The sweep side of the command line: `pipe run FILE --sweep ...` (each run's stages on the terminal
//! as for one run, a line per run, the grouped table at the end) and `pipe compare SWEEP --group-by`.

use super::render::{name_width, run_summary};
use super::terminal::{Terminal, Verbosity, table, wait_message};
use crate::error::{EXIT_OK, EXIT_STAGE_FAILED, Error};
use crate::pipeline::{Override, Pipeline};
use crate::records::sweep::{SweepRecord, SweepRun, group_by, varying_params};
use crate::records::{RunRecord, RunStatus};
use crate::report::sweep::{shown_metrics, summary_cell};
use crate::run::context::RunRequest;
use crate::run::events::Observer;
use crate::run::sweep::{SweepObserver, SweepPlan};
use crate::run::workspace::Workspace;

/// `pipe run FILE --sweep ...`: every combination, then the sweep's report and grouped table.
pub(super) fn run_sweep(
    ws: &Workspace,
    request: &RunRequest,
    plan: &SweepPlan,
    verbosity: Verbosity,
    dry_run: bool,
) -> Result<i32, Error> {
    if dry_run {
        for values in plan.combinations() {
            println!("{}", describe(&values));
        }
        return Ok(EXIT_OK);
    }
    let mut progress = Progress { verbosity };
    let sweep = ws.sweep(request, plan, &mut progress, &wait_message)?;
    let records = ws.sweep_runs(&sweep);
    let report =
        crate::report::sweep::write(&ws.runs.run_dir(&sweep.id).report(), &sweep, &records)
            .map_err(|e| Error::Io(format!("{e:#}")))?;
    let done = sweep
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .count();
    eprintln!(
        "sweep {} {}: {done} of {} runs succeeded in {:.1}s ({})",
        sweep.id,
        sweep.status.word(),
        sweep.runs.len(),
        sweep.duration_s,
        report.display()
    );
    if let Some(axis) = sweep.axes.first() {
        print!("{}", grouped_table(&sweep, &records, &axis.key));
    }
    crate::run::groups::exit_if_interrupted();
    Ok(if sweep.status == RunStatus::Succeeded {
        EXIT_OK
    } else {
        EXIT_STAGE_FAILED
    })
}

/// `pipe compare SWEEP --group-by KEY`.
pub(super) fn compare_sweep(ws: &Workspace, spec: &str, key: &str) -> Result<i32, Error> {
    let sweep = ws.runs.resolve_sweep(spec).map_err(Error::Usage)?;
    let records = ws.sweep_runs(&sweep);
    print!("{}", grouped_table(&sweep, &records, key));
    Ok(EXIT_OK)
}

/// Each shown metric as mean ± sd [min-max] per value of `key`, with the params that vary.
fn grouped_table(sweep: &SweepRecord, records: &[RunRecord], key: &str) -> String {
    let metrics = shown_metrics(records);
    let groups = group_by(records, key);
    let mut headers = vec![key, "runs"];
    headers.extend(metrics.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut row = vec![g.value.to_string(), g.runs.len().to_string()];
            row.extend(metrics.iter().map(|m| summary_cell(g, m)));
            row
        })
        .collect();
    format!(
        "sweep {} grouped by {key} (mean ± sd [min-max] over succeeded runs); params that vary: {}\n{}",
        sweep.id,
        varying_params(records).join(", "),
        table(&headers, &rows)
    )
}

fn describe(values: &[Override]) -> String {
    values
        .iter()
        .map(|o| format!("{}={}", o.key, o.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The terminal through a sweep: one [`Terminal`] per run, a line as each starts and ends.
struct Progress {
    verbosity: Verbosity,
}

impl SweepObserver for Progress {
    fn starting(
        &mut self,
        index: usize,
        total: usize,
        values: &[Override],
        pipeline: &Pipeline,
    ) -> Box<dyn Observer> {
        let term = Terminal::new(
            self.verbosity,
            pipeline.stages.len(),
            name_width(pipeline.stages.iter().map(|s| s.name.len())),
        );
        term.line(&format!(
            "sweep run {}/{total}: {}",
            index + 1,
            describe(values)
        ));
        Box::new(term)
    }

    fn finished(&mut self, run: &SweepRun, record: Option<&RunRecord>) {
        match (record, &run.error) {
            (Some(record), _) => eprintln!("{}", run_summary(record)),
            (None, Some(error)) => eprintln!("{}: {error}", describe(&run.values)),
            (None, None) => {}
        }
    }
}
