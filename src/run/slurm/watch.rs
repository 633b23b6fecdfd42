//! Waiting for a run's jobs: each job's result file says it is done; `squeue` says which are running
//! and which ended without a result (cancelled, killed, timed out, node failure). Stage lines are
//! reported as jobs start and finish. After a failure (without `--keep-going`) the pending jobs are
//! cancelled; on Ctrl-C all of them are.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::client::{self, JobState};
use super::{JobFiles, RESULT_GRACE};
use crate::pipeline::Pipeline;
use crate::pipeline::graph::Dag;
use crate::run::events::{Event, Observer};
use crate::run::local::tail_lines;
use crate::run::outcome::{StageResult, Status};

/// How often result files are looked for.
const RESULT_POLL: Duration = Duration::from_millis(100);
/// How often `squeue` is asked.
const QUEUE_POLL: Duration = Duration::from_secs(1);
/// How long `squeue` may fail before the stages without a result are reported as failed.
const QUEUE_GIVE_UP: Duration = Duration::from_secs(60);
/// Lines of a job's log shown when it ends without a result.
const LOG_TAIL_LINES: usize = 15;

/// Makes the first Ctrl-C (or SIGTERM) set `flag`, and a second Ctrl-C exit at once.
pub fn on_interrupt(flag: &Arc<AtomicBool>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let register = || -> std::io::Result<()> {
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, flag.clone())?;
        signal_hook::flag::register(SIGINT, flag.clone())?;
        signal_hook::flag::register(SIGTERM, flag.clone())?;
        Ok(())
    };
    register().map_err(|e| format!("cannot handle Ctrl-C: {e}"))
}

/// Why the stages that have not ended were stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Nothing stopped them (yet).
    None,
    /// A stage failed (and `--keep-going` was not given).
    AfterFailure(String),
    /// The user cancelled the run.
    Cancelled,
}

/// The outcome of waiting.
pub struct Watched {
    /// Every stage's final result, in the order the run evaluated them.
    pub results: Vec<StageResult>,
    /// Whether the user cancelled the run.
    pub cancelled: bool,
}

/// What the waiting needs to know about the run.
pub struct Watch<'a> {
    /// The run's job files.
    pub files: &'a JobFiles,
    /// The pipeline.
    pub pipeline: &'a Pipeline,
    /// Its graph.
    pub dag: &'a Dag,
    /// Whether independent branches go on after a failure.
    pub keep_going: bool,
    /// The finishing job, cancelled with the rest on Ctrl-C (this process completes the record).
    pub finisher: &'a str,
}

/// What asking Slurm for its queue gave.
enum QueuePoll {
    /// It was asked too recently to ask again.
    NotYet,
    /// Each job's state.
    States(HashMap<String, JobState>),
    /// It has not answered for [`QUEUE_GIVE_UP`]: why, the last time.
    GaveUp(String),
}

/// When the queue was last asked, and since when it has not answered.
#[derive(Default)]
struct QueueWatch {
    last_poll: Option<Instant>,
    failing_since: Option<Instant>,
}

impl QueueWatch {
    /// Asks the queue, at most every [`QUEUE_POLL`].
    fn poll(&mut self) -> QueuePoll {
        if self.last_poll.is_some_and(|t| t.elapsed() < QUEUE_POLL) {
            return QueuePoll::NotYet;
        }
        self.last_poll = Some(Instant::now());
        match client::states() {
            Ok(states) => {
                self.failing_since = None;
                QueuePoll::States(states)
            }
            Err(e) => {
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUEUE_GIVE_UP {
                    QueuePoll::GaveUp(e)
                } else {
                    QueuePoll::NotYet
                }
            }
        }
    }
}

/// Waits until every queued stage has a final result.
pub fn wait(
    watch: &Watch,
    mut results: Vec<StageResult>,
    observer: &dyn Observer,
    interrupted: &AtomicBool,
) -> Watched {
    let Watch {
        files,
        pipeline,
        dag,
        keep_going,
        finisher,
    } = *watch;
    let mut open: Vec<usize> = (0..results.len())
        .filter(|&k| results[k].status == Status::Queued)
        .collect();
    let mut running: HashSet<usize> = HashSet::new();
    let mut ended_at: HashMap<usize, Instant> = HashMap::new();
    let mut stop = Stop::None;
    let mut queue = QueueWatch::default();
    while !open.is_empty() {
        if stop != Stop::Cancelled && interrupted.load(Ordering::SeqCst) {
            stop = Stop::Cancelled;
            let mut jobs = job_ids(&results, &open);
            jobs.push(finisher.to_string());
            let _ = client::cancel(&jobs, false);
        }
        let states = match queue.poll() {
            QueuePoll::NotYet => None,
            QueuePoll::States(states) => Some(states),
            QueuePoll::GaveUp(e) => {
                // Slurm does not answer: what has no result is reported, not waited for.
                for k in std::mem::take(&mut open) {
                    let mut r = results[k].clone();
                    r.status = Status::Failed;
                    r.error = Some(format!(
                        "no result, and Slurm has not answered for {}s: {e}",
                        QUEUE_GIVE_UP.as_secs()
                    ));
                    observer.on(Event::Finished(&r));
                    results[k] = r;
                }
                break;
            }
        };
        // First the results jobs wrote, so a failure is known before the jobs it stopped are settled.
        let mut written = Vec::new();
        open.retain(|&k| match files.result(&results[k].name) {
            Some(r) => {
                written.push((k, r));
                false
            }
            None => true,
        });
        for (k, mut r) in written {
            r.job_id = results[k].job_id.clone();
            settle(&mut results, k, r, &mut stop, keep_going, &open, observer);
        }
        let Some(states) = states else {
            std::thread::sleep(RESULT_POLL);
            continue;
        };
        let queued = std::mem::take(&mut open);
        for &k in &queued {
            let job_id = results[k].job_id.clone().unwrap_or_default();
            let state = states.get(&job_id);
            if state.is_some_and(|s| s.state == "RUNNING") && running.insert(k) {
                observer.on(Event::Started(&pipeline.stages[results[k].index]));
            }
            let started = files.log(&results[k].name).exists();
            let since = *ended_at.entry(k).or_insert_with(Instant::now);
            // A stage below one still unsettled waits for it, so it can say why it did not run.
            let upstream_open = dag.upstream(results[k].index).any(|(u, _)| {
                results
                    .iter()
                    .any(|r| r.index == u && r.status == Status::Queued)
            });
            if state.is_some_and(JobState::is_active) {
                ended_at.remove(&k);
                open.push(k);
            } else if (started && since.elapsed() < RESULT_GRACE) || (!started && upstream_open) {
                open.push(k);
            } else {
                let r = ended_without_result(&results, k, dag, files, state, &stop);
                settle(&mut results, k, r, &mut stop, keep_going, &queued, observer);
            }
        }
        if !open.is_empty() {
            std::thread::sleep(RESULT_POLL);
        }
    }
    Watched {
        results,
        cancelled: stop == Stop::Cancelled,
    }
}

/// Records a stage's final result; the first failure (without `--keep-going`) cancels the jobs that
/// have not started.
fn settle(
    results: &mut [StageResult],
    k: usize,
    result: StageResult,
    stop: &mut Stop,
    keep_going: bool,
    open: &[usize],
    observer: &dyn Observer,
) {
    if result.status == Status::Failed && !keep_going && *stop == Stop::None {
        *stop = Stop::AfterFailure(result.name.clone());
        let _ = client::cancel(&job_ids(results, open), true);
    }
    observer.on(Event::Finished(&result));
    results[k] = result;
}

fn job_ids(results: &[StageResult], which: &[usize]) -> Vec<String> {
    which
        .iter()
        .filter_map(|&k| results[k].job_id.clone())
        .collect()
}

/// The result of a stage whose job ended without writing one: skipped when an upstream stage failed
/// or the run was stopped before it started, failed (with its log's tail) otherwise.
pub fn ended_without_result(
    results: &[StageResult],
    k: usize,
    dag: &Dag,
    files: &JobFiles,
    state: Option<&JobState>,
    stop: &Stop,
) -> StageResult {
    let queued = &results[k];
    let job_id = queued.job_id.clone().unwrap_or_default();
    // Started as `pipe status` says running: Slurm allocated it, even if its script has not begun.
    let started = files.log(&queued.name).exists() || state.is_some_and(JobState::is_running);
    let mut r = queued.clone();
    r.status = Status::Skipped;
    let upstream_problem = dag.upstream(queued.index).find_map(|(u, _)| {
        let up = results.iter().find(|r| r.index == u)?;
        match up.status {
            Status::Failed => Some(format!("upstream `{}` failed", up.name)),
            Status::Skipped => Some(format!("upstream `{}` did not run", up.name)),
            _ => None,
        }
    });
    r.reason = match (upstream_problem, stop, started) {
        (Some(problem), _, false) => problem,
        (None, _, false) if state.is_some_and(|s| s.reason == "DependencyNeverSatisfied") => {
            "an upstream stage's job did not succeed".into()
        }
        (_, Stop::Cancelled, false) => "cancelled before it started".into(),
        (_, Stop::AfterFailure(name), false) => format!("run stopped after `{name}` failed"),
        (_, Stop::Cancelled, true) => {
            r.status = Status::Failed;
            r.error = Some(format!("cancelled while running (job {job_id})"));
            "cancelled".into()
        }
        _ => {
            r.status = Status::Failed;
            let how = state.map_or("left the queue".to_string(), |s| {
                format!("ended {} ({})", s.state, s.reason)
            });
            let log = files.log(&queued.name);
            let mut error = format!("job {job_id} {how} without a result");
            let tail = tail_lines(&log, LOG_TAIL_LINES);
            if !tail.is_empty() {
                error.push_str(&format!(
                    "\nlast lines of its log ({}):\n{tail}",
                    log.display()
                ));
            }
            r.error = Some(error);
            "failed".into()
        }
    };
    r
}
