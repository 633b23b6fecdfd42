//! The scheduler: walks the graph and hands each stage whose upstream stages are done to a pool of
//! worker threads, emitting an event as each starts and finishes.
//!
//! ```text
//!   board: ready queue, waiting counts, results ◀──▶ [worker × jobs] ──▶ events
//!   a worker takes a ready stage, evaluates it, records the result and queues the dependents
//!   whose upstream stages are now all done (and carries on with the first of them itself)
//! ```
//!
//! With a remote cache a run has more workers than `--jobs` (lookups wait on the network), and the
//! stages that run take slots of a pool of `--jobs`, as a sweep's runs do.
//!
//! In plan mode (`pipe status`, `--dry-run`) a stage below one that will run is reported as "upstream
//! `x` will run" (its key cannot be known until then).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Condvar, Mutex};

use super::context::{Force, RunContext};
use super::evaluate::Job;
use super::events::{Event, Observer};
use super::outcome::{StageResult, Status};
use crate::error::Error;
use crate::store::state::PipelineState;

/// The scheduler's shared state.
struct Board {
    /// Stages whose upstream stages are all done, in pipeline order.
    ready: VecDeque<usize>,
    /// Per stage, how many selected upstream stages are not done yet.
    waiting: Vec<usize>,
    /// Per stage, its result once done.
    results: Vec<Option<StageResult>>,
    /// Stages being evaluated right now.
    in_flight: usize,
    /// The stage whose failure stopped the run (without `--keep-going`).
    stopped: Option<String>,
}

/// What every worker shares.
struct Pool<'a> {
    board: &'a Mutex<Board>,
    wake: &'a Condvar,
    selected: &'a [bool],
    position: &'a [usize],
    observer: &'a dyn Observer,
    last_state: &'a PipelineState,
}

impl RunContext<'_> {
    /// Evaluates every selected stage; returns one result per selected stage, in pipeline order.
    pub fn schedule(
        &self,
        observer: &dyn Observer,
        last_state: &PipelineState,
    ) -> Result<Vec<StageResult>, Error> {
        let selected = self
            .dag
            .select(self.pipeline, &self.options.targets)
            .map_err(Error::Usage)?;
        if let Force::Stages(names) = &self.options.force {
            self.dag
                .select(self.pipeline, &names.iter().cloned().collect::<Vec<_>>())
                .map_err(Error::Usage)?;
        }
        let n = self.pipeline.stages.len();
        let waiting: Vec<usize> = (0..n)
            .map(|i| {
                self.dag
                    .upstream(i)
                    .filter(|(u, _)| selected[*u])
                    .map(|(u, _)| u)
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .collect();
        let position: Vec<usize> = {
            let mut p = vec![0; n];
            for (rank, &i) in self.dag.order().iter().enumerate() {
                p[i] = rank;
            }
            p
        };
        let ready: VecDeque<usize> = self
            .dag
            .order()
            .iter()
            .copied()
            .filter(|&i| selected[i] && waiting[i] == 0)
            .collect();
        let jobs = self
            .workers()
            .max(1)
            .min(selected.iter().filter(|s| **s).count().max(1));
        let board = Mutex::new(Board {
            ready,
            waiting,
            results: vec![None; n],
            in_flight: 0,
            stopped: None,
        });
        let wake = Condvar::new();
        let pool = Pool {
            board: &board,
            wake: &wake,
            selected: &selected,
            position: &position,
            observer,
            last_state,
        };
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| self.work(&pool));
            }
        });
        let results: Vec<StageResult> = board
            .into_inner()
            .expect("scheduler lock")
            .results
            .into_iter()
            .flatten()
            .collect();
        Ok(results)
    }

    /// One worker: takes ready stages off the board until none are left or running. A worker that
    /// finishes a stage goes on with the dependent it made ready itself, so a chain of cache hits
    /// runs on one thread without a wake-up per stage.
    fn work(&self, pool: &Pool) {
        let mut board = pool.board.lock().expect("scheduler lock");
        loop {
            let Some(i) = board.ready.pop_front() else {
                if board.in_flight == 0 {
                    pool.wake.notify_all();
                    return;
                }
                board = pool.wake.wait(board).expect("scheduler lock");
                continue;
            };
            let result =
                match self.settle_without_running(i, &board.results, board.stopped.as_deref()) {
                    Some(settled) => settled,
                    None => {
                        let upstream_results = || {
                            self.dag
                                .upstream(i)
                                .filter_map(|(u, _)| board.results[u].as_ref())
                        };
                        let job = Job {
                            index: i,
                            upstream: upstream_results()
                                .filter(|r| r.status != Status::Queued)
                                .map(|r| (r.name.clone(), r.outputs.clone()))
                                .collect(),
                            queued_upstream: upstream_results()
                                .filter_map(|r| Some((r.name.clone(), r.job_id.clone()?)))
                                .collect(),
                            deferred_upstream: upstream_results()
                                .filter(|r| r.deferred)
                                .filter_map(|r| r.key.clone())
                                .collect(),
                        };
                        board.in_flight += 1;
                        drop(board);
                        pool.observer.on(Event::Started(&self.pipeline.stages[i]));
                        let result = self.evaluate(job, pool.last_state, pool.observer);
                        board = pool.board.lock().expect("scheduler lock");
                        board.in_flight -= 1;
                        if result.status == Status::Failed
                            && !self.options.keep_going
                            && board.stopped.is_none()
                        {
                            board.stopped = Some(result.name.clone());
                        }
                        result
                    }
                };
            pool.observer.on(Event::Finished(&result));
            let mut newly: Vec<usize> = Vec::new();
            for d in self.dag.downstream(i) {
                if pool.selected[d] {
                    board.waiting[d] -= 1;
                    if board.waiting[d] == 0 {
                        newly.push(d);
                    }
                }
            }
            newly.sort_by_key(|d| pool.position[*d]);
            board.ready.extend(newly);
            board.results[i] = Some(result);
            if board.ready.len() > 1 {
                pool.wake.notify_all();
            }
        }
    }

    /// A result for a stage that must not be dispatched: an upstream failed or will run, or the run
    /// has stopped.
    fn settle_without_running(
        &self,
        i: usize,
        results: &[Option<StageResult>],
        stopped: Option<&str>,
    ) -> Option<StageResult> {
        let stage = &self.pipeline.stages[i];
        for (u, _) in self.dag.upstream(i) {
            let Some(up) = &results[u] else { continue };
            let reason = match up.status {
                Status::Failed => format!("upstream `{}` failed", up.name),
                Status::Skipped if up.key.is_none() && up.outputs.is_empty() => {
                    format!("upstream `{}` did not run", up.name)
                }
                Status::WillRun => {
                    return Some(StageResult::new(
                        i,
                        stage,
                        Status::WillRun,
                        format!("upstream `{}` will run", up.name),
                    ));
                }
                _ => continue,
            };
            return Some(StageResult::new(i, stage, Status::Skipped, reason));
        }
        stopped.map(|name| {
            StageResult::new(
                i,
                stage,
                Status::Skipped,
                format!("run stopped after `{name}` failed"),
            )
        })
    }
}
