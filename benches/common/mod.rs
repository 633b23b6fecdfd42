//! Helpers shared by the benchmarks: run a command and take its wall time and peak RSS, medians, and
//! the machine's load average (printed with every result, since 2 busy cores change everything).

#![expect(dead_code, reason = "each benchmark uses only some of these helpers")]

use std::process::{Command, Stdio};
use std::time::Instant;

/// Wall time and peak RSS of one command.
pub struct Measured {
    /// Seconds from spawn to exit.
    pub wall_s: f64,
    /// The largest resident set of the process or any of its reaped children, in MiB.
    pub max_rss_mb: f64,
}

/// Runs `cmd` to completion; its wall time and the peak RSS of it or its largest child.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4 below, which also gives the child's peak RSS"
)]
pub fn measure(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    Measured {
        wall_s: start.elapsed().as_secs_f64(),
        max_rss_mb: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// This process's peak resident set so far, in MiB.
pub fn own_peak_rss_mb() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

/// The 1-minute load average.
pub fn load_1min() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Measurements of several tools taken in turns (pipe, anchor, anchor, pipe, pipe, ...), so that a
/// change of load touches every tool alike, with the 1-minute load before each round.
pub struct Rounds<T> {
    /// `by_tool[t][r]`: tool `t`'s measurement in round `r`.
    pub by_tool: Vec<Vec<T>>,
    /// The 1-minute load average before each round.
    pub loads: Vec<f64>,
}

impl<T> Rounds<T> {
    /// Runs `rounds` rounds of `tools`, each tool once a round: in the order given in even rounds,
    /// reversed in odd ones, so that no tool always goes first (into a cold cache, or right after
    /// another tool's load).
    pub fn run(rounds: usize, tools: &mut [&mut dyn FnMut() -> T]) -> Rounds<T> {
        let mut by_tool: Vec<Vec<T>> = tools.iter().map(|_| Vec::new()).collect();
        let mut loads = Vec::new();
        for round in 0..rounds {
            loads.push(load_1min());
            let mut order: Vec<usize> = (0..tools.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for tool in order {
                let value = tools[tool]();
                by_tool[tool].push(value);
            }
        }
        Rounds { by_tool, loads }
    }

    /// Each round's `metric` of tool `a` over tool `b`'s: the ratios the spread is taken of.
    pub fn ratios(&self, a: usize, b: usize, metric: impl Fn(&T) -> f64) -> Spread {
        Spread::of(
            self.by_tool[a]
                .iter()
                .zip(&self.by_tool[b])
                .map(|(x, y)| metric(x) / metric(y))
                .collect(),
        )
    }

    /// Tool `tool`'s `metric` over the rounds.
    pub fn values(&self, tool: usize, metric: impl Fn(&T) -> f64) -> Spread {
        Spread::of(self.by_tool[tool].iter().map(metric).collect())
    }

    /// "load 1.2-1.9" over the rounds.
    pub fn load(&self) -> String {
        let loads = Spread::of(self.loads.clone());
        format!("load {:.2}-{:.2}", loads.min, loads.max)
    }
}

/// The median and the range of a few measurements.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `xs` (NaN for none).
    pub fn of(mut xs: Vec<f64>) -> Spread {
        xs.retain(|x| !x.is_nan());
        if xs.is_empty() {
            return Spread {
                min: f64::NAN,
                median: f64::NAN,
                max: f64::NAN,
            };
        }
        xs.sort_by(f64::total_cmp);
        let mid = xs.len() / 2;
        let median = if xs.len() % 2 == 1 {
            xs[mid]
        } else {
            (xs[mid - 1] + xs[mid]) / 2.0
        };
        Spread {
            min: xs[0],
            median,
            max: xs[xs.len() - 1],
        }
    }

    /// "median [min-max]" with `digits` decimals.
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.digits$} [{:.digits$}-{:.digits$}]",
            self.median, self.min, self.max
        )
    }
}

/// This process's CPU time so far (user + system, all threads), in seconds.
pub fn own_cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
