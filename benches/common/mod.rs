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

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
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
