//! Stage commands in process groups of their own, so that no command outlives the `pipe` that
//! started it and goes on writing outputs under a later run.
//!
//! Each command is the leader of a new process group, recorded in the store's `running/` folder
//! while it runs (host, group id, the start times of the group's leader and of the `pipe` that owns
//! it). A `pipe run` that starts ends every group on this host whose owner is gone (killed by the OOM
//! killer, a dropped SSH connection, `kill -9`) before it touches any output, and says so. Ctrl-C,
//! SIGTERM and SIGHUP, which now reach only `pipe`, are passed on to the groups of the running
//! commands; `pipe` then exits as the signal asks.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::util::fsutil;

/// How long a group is given to end after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// The groups of the commands this process is running, for passing signals on.
static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// The interrupting signal once one arrived (0 before): no new command starts.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// What `running/<file>.json` says about one running command.
#[derive(Debug, Serialize, Deserialize)]
struct GroupRecord {
    /// The machine it runs on: groups are only ever signalled from there.
    host: String,
    /// The group id, which is its leader's pid.
    group: i32,
    /// The leader's start time (clock ticks after boot), to tell it from a later process with its pid.
    leader_started: Option<u64>,
    /// The `pipe` process that started it, and its start time.
    owner: u32,
    owner_started: Option<u64>,
    /// The workspace and stage it belongs to.
    root: PathBuf,
    stage: String,
}

/// Runs `command` as the leader of a new process group, recorded in the store while it runs.
pub fn run_in_group(
    mut command: Command,
    store: &Store,
    root: &Path,
    stage: &str,
) -> io::Result<ExitStatus> {
    if interrupted() {
        return Err(io::Error::other("pipe was interrupted"));
    }
    let mut child = command.process_group(0).spawn()?;
    let group = child.id() as i32;
    LIVE_GROUPS.lock().expect("group list").push(group);
    if interrupted() {
        // The interrupt came between the spawn and the line above: pass it on here.
        signal(group, libc::SIGTERM);
    }
    let (host, owner_started) = this_pipe();
    let record = GroupRecord {
        host: host.clone(),
        group,
        leader_started: started_ticks(group),
        owner: std::process::id(),
        owner_started: *owner_started,
        root: root.to_path_buf(),
        stage: stage.to_string(),
    };
    let file = record_path(store, &record.host, group);
    let recorded = serde_json::to_vec(&record)
        .map_err(io::Error::other)
        .and_then(|json| fsutil::write_atomic(&file, &json));
    let status = child.wait();
    // What the command left running in its group (`tool &`) ends with it, before its outputs are
    // hashed. (Asking the kernel first keeps the usual case, an empty group, at one syscall.)
    // SAFETY: signal 0 only checks that the group exists.
    if unsafe { libc::kill(-group, 0) } == 0 && group_alive(group) {
        end_group(group);
    }
    LIVE_GROUPS
        .lock()
        .expect("group list")
        .retain(|g| *g != group);
    if recorded.is_ok() {
        let _ = fs::remove_file(&file);
    }
    status
}

/// This process's host and start time, read once (every command's record names them).
fn this_pipe() -> &'static (String, Option<u64>) {
    static THIS: OnceLock<(String, Option<u64>)> = OnceLock::new();
    THIS.get_or_init(|| {
        (
            fsutil::host_name(),
            started_ticks(std::process::id() as i32),
        )
    })
}

/// Ends the groups of commands in workspace `root` that an earlier `pipe` on this host started and
/// left behind when it died; returns (stage, what was done) per group ended. Called under the
/// workspace lock, before any output is touched.
pub fn end_orphans(store: &Store, root: &Path) -> Vec<(String, String)> {
    let dir = store.dir().join("running");
    // Without /proc no process can be told from a later one with its pid: leave everything be.
    let Ok(files) = fs::read_dir(&dir).and_then(|f| fs::metadata("/proc/self/stat").map(|_| f))
    else {
        return Vec::new();
    };
    let host = fsutil::host_name();
    let mut ended = Vec::new();
    for path in files.flatten().map(|f| f.path()) {
        let record = fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<GroupRecord>(&bytes).ok());
        let Some(record) = record else {
            let _ = fs::remove_file(&path);
            continue;
        };
        // A sweep's runs work in sandboxes in the store's scratch folder.
        let ours = record.root == root || record.root.starts_with(store.sandboxes_dir());
        if record.host != host || !ours {
            continue;
        }
        let owner_alive =
            started_ticks(record.owner as i32).is_some_and(|t| Some(t) == record.owner_started);
        if owner_alive {
            continue;
        }
        // A leader alive with another start time is a new process that reused the pid: the old
        // group is gone (no group id is reused while the group has members).
        let leader_reused = started_ticks(record.group)
            .is_some_and(|t| record.leader_started.is_some_and(|r| r != t));
        if !leader_reused && group_alive(record.group) {
            let how = end_group(record.group);
            let message = format!(
                "its command from an earlier pipe that died (process group {}) was still running; \
                 {how} before running anything",
                record.group
            );
            ended.push((record.stage, message));
        }
        let _ = fs::remove_file(&path);
    }
    ended
}

/// Whether Ctrl-C, SIGTERM or SIGHUP has arrived since [`forward_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst) != 0
}

/// After an interrupt, once the run is recorded: ends this process as the signal asks.
pub fn exit_if_interrupted() {
    let sig = INTERRUPTED.load(Ordering::SeqCst);
    if sig != 0 {
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        std::process::exit(128 + sig);
    }
}

/// Passes Ctrl-C, SIGTERM and SIGHUP on to the running commands' groups and gives them [`GRACE`] to
/// end (then SIGKILL). The run then stops starting commands, records itself as cancelled and calls
/// [`exit_if_interrupted`]; should it be stuck (in a built-in stage), this exits after another
/// [`GRACE`]. Installed once per process.
pub fn forward_interrupts() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                INTERRUPTED.store(sig, Ordering::SeqCst);
                let groups = LIVE_GROUPS.lock().expect("group list").clone();
                for group in &groups {
                    signal(*group, sig);
                }
                let deadline = Instant::now() + GRACE;
                while groups.iter().any(|g| group_alive(*g)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                for group in groups.into_iter().filter(|g| group_alive(*g)) {
                    signal(group, libc::SIGKILL);
                }
                std::thread::sleep(GRACE);
                exit_if_interrupted();
            }
        });
    });
}

/// SIGTERM to the group, SIGKILL after [`GRACE`]; says which it took.
fn end_group(group: i32) -> &'static str {
    signal(group, libc::SIGTERM);
    if wait_gone(group, GRACE) {
        return "ended it with SIGTERM";
    }
    signal(group, libc::SIGKILL);
    wait_gone(group, Duration::from_secs(2));
    "it ignored SIGTERM for 5 s and was killed"
}

fn wait_gone(group: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while group_alive(group) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn signal(group: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory of ours.
    unsafe {
        libc::kill(-group, sig);
    }
}

/// Whether any process of `group` is alive (not a zombie waiting for a parent to reap it).
fn group_alive(group: i32) -> bool {
    let Ok(procs) = fs::read_dir("/proc") else {
        // No /proc: ask the kernel, counting zombies as alive.
        // SAFETY: signal 0 only checks that the group exists.
        return unsafe { libc::kill(-group, 0) } == 0;
    };
    procs.flatten().any(|p| {
        let stat = fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        let fields = stat_fields(&stat);
        // Fields after the name: state (3rd of stat(5)), ppid, pgrp.
        fields.first().is_some_and(|s| *s != "Z")
            && fields.get(2) == Some(&group.to_string().as_str())
    })
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and parentheses).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default()
}

/// Whether process `pid` on this host is the one that started at `started` (clock ticks after boot,
/// as [`process_started`] gave); without a start time, whether `pid` exists.
pub fn is_same_process(pid: u32, started: Option<u64>) -> bool {
    match started {
        Some(then) => started_ticks(pid as i32) == Some(then),
        None => Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// When process `pid` started (clock ticks after boot); `None` if it is gone or there is no /proc.
pub fn process_started(pid: u32) -> Option<u64> {
    started_ticks(pid as i32)
}

/// When process `pid` started, in clock ticks after boot (field 22 of stat(5)); `None` if it is gone.
fn started_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).get(19)?.parse().ok()
}

fn record_path(store: &Store, host: &str, group: i32) -> PathBuf {
    let host_id = blake3::hash(host.as_bytes()).to_hex();
    store
        .dir()
        .join("running")
        .join(format!("{}-{group}.json", &host_id[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 1 2";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[2], "4242");
        assert_eq!(fields[19], "987654");
        assert!(started_ticks(std::process::id() as i32).is_some());
    }
}
