//! The run records under `runs/`: one folder per `pipe run` with `run.json` (the contract in
//! docs/records.md, written atomically at the start and at the end of the run) and the stage logs.
//! This is the only module that writes to `runs/`; it also lists, resolves (`latest`, id prefixes) and
//! removes records. A truncated or foreign `run.json` is skipped with a warning, never a crash.

pub mod compare;
pub mod index;
pub mod layout;
mod status;
pub mod sweep;

pub use layout::{LogStream, RunDir};
pub use sweep::SweepRecord;

/// What a sweep's id starts with (its folder sits among the runs').
pub const SWEEP_PREFIX: &str = "sweep-";
pub use status::{RunStatus, Status};

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::{ExecutorKind, Override};
use crate::util::fsutil;

/// Whether `id` can name a run or sweep: letters, digits and `-` only, so never a path (an id read
/// from a crafted `sweep.json` or a URL cannot reach outside `runs/`).
pub fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 100 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Version of `run.json`; bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// One run, as written to `runs/<id>/run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// `YYYYMMDD-HHMMSS-xxxx`.
    pub id: String,
    /// The pipeline file as given.
    pub pipeline: String,
    /// `running` while in progress, then `succeeded`, `failed` or `cancelled`.
    pub status: RunStatus,
    /// UTC, RFC 3339.
    pub started_at: String,
    /// UTC, RFC 3339; absent while running.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Wall time of the run.
    #[serde(default)]
    pub duration_s: f64,
    /// Pipeline params after `--set`.
    pub params: Value,
    /// The `--set` overrides (a mapping in `run.json`: a key given twice keeps its last value).
    #[serde(default, with = "crate::pipeline::overrides::as_mapping")]
    pub overrides: Vec<Override>,
    /// Stages asked for on the command line (empty: all).
    #[serde(default)]
    pub targets: Vec<String>,
    /// pipe's version.
    #[serde(default)]
    pub pipe_version: String,
    /// The process that wrote the record (to tell a killed run from a running one).
    #[serde(default)]
    pub pid: u32,
    /// Parallel jobs.
    #[serde(default)]
    pub jobs: usize,
    /// Where stages ran: `local` or `slurm`.
    #[serde(default = "local")]
    pub executor: ExecutorKind,
    /// Stages in pipeline order.
    pub stages: Vec<StageRecord>,
    /// Stage name -> values from its metrics files.
    #[serde(default)]
    pub metrics: BTreeMap<String, Value>,
    /// Problems that did not fail the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The sweep it is part of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<String>,
}

/// One stage in a run record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    /// Stage name.
    pub name: String,
    /// `cmd` or a built-in kind.
    #[serde(default)]
    pub kind: String,
    /// `ran`, `cached`, `failed` or `skipped` (`queued` while a Slurm run's job waits).
    pub status: Status,
    /// The stage key, when it was computed.
    #[serde(default)]
    pub key: Option<String>,
    /// Seconds spent on it in this run.
    #[serde(default)]
    pub duration_s: f64,
    /// For a cached stage: how long it took when it ran.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub saved_s: f64,
    /// Why it ran, or why it did not.
    #[serde(default)]
    pub reason: String,
    /// Output path -> content hash.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Exit code of a failed command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The cluster job that ran it (Slurm's job id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

fn local() -> ExecutorKind {
    ExecutorKind::Local
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl RunRecord {
    /// The state to show: a local record still `running` whose process is gone was interrupted (a
    /// Slurm run's jobs outlive the process that submitted them).
    pub fn effective_status(&self) -> RunStatus {
        if self.status == RunStatus::Running
            && self.executor == ExecutorKind::Local
            && !Path::new(&format!("/proc/{}", self.pid)).exists()
        {
            RunStatus::Interrupted
        } else {
            self.status
        }
    }

    /// How many stages have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.stages.iter().filter(|s| s.status == status).count()
    }

    /// Metrics flattened to `stage.name` -> number, for tables and comparisons.
    pub fn numeric_metrics(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, f64>) {
            match v {
                Value::Number(n) => {
                    out.insert(prefix.to_string(), n.as_f64().unwrap_or(f64::NAN));
                }
                Value::Object(map) => {
                    for (k, v) in map {
                        walk(&format!("{prefix}.{k}"), v, out);
                    }
                }
                _ => {}
            }
        }
        for (stage, v) in &self.metrics {
            walk(stage, v, &mut out);
        }
        out
    }
}

/// The `runs/` folder.
#[derive(Debug, Clone)]
pub struct Runs {
    dir: PathBuf,
}

impl Runs {
    /// The runs folder at `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Runs {
        Runs { dir }
    }

    /// The runs folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of run `id`.
    pub fn run_dir(&self, id: &str) -> RunDir {
        RunDir::new(self.dir.join(id))
    }

    /// Reserves a new run id by creating its folder (so two runs in the same second differ).
    pub fn create(&self) -> io::Result<String> {
        self.create_named("")
    }

    /// Reserves a new sweep id (`sweep-` and a run id's form) by creating its folder.
    pub fn create_sweep(&self) -> io::Result<String> {
        self.create_named(SWEEP_PREFIX)
    }

    fn create_named(&self, prefix: &str) -> io::Result<String> {
        fs::create_dir_all(&self.dir).map_err(|e| fsutil::with_path(e, &self.dir))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        for attempt in 0u32..100 {
            let seed = format!("{}-{}-{attempt}", now.as_nanos(), fsutil::unique_suffix());
            let suffix = &blake3::hash(seed.as_bytes()).to_hex()[..4];
            let id = format!("{prefix}{}-{suffix}", compact_timestamp(now.as_secs()));
            match fs::create_dir(self.dir.join(&id)) {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(fsutil::with_path(e, &self.dir)),
            }
        }
        Err(io::Error::other("could not find a free run id"))
    }

    /// Writes `record` atomically to `runs/<id>/run.json`.
    pub fn write(&self, record: &RunRecord) -> io::Result<()> {
        if !is_id(&record.id) {
            return Err(io::Error::other(format!("`{}` is not a run id", record.id)));
        }
        let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        fsutil::write_atomic(&self.run_dir(&record.id).record(), &json)
    }

    /// Every readable record, newest first, and a warning for each unreadable one.
    pub fn list(&self) -> (Vec<RunRecord>, Vec<String>) {
        let mut records = Vec::new();
        let mut warnings = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return (records, warnings);
        };
        for entry in entries.flatten() {
            let path = RunDir::new(entry.path()).record();
            if !path.exists() {
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<RunRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) if r.format_version <= FORMAT_VERSION => records.push(r),
                Ok(r) => warnings.push(format!(
                    "skipping {}: format_version {} is newer than this pipe understands",
                    path.display(),
                    r.format_version
                )),
                Err(e) => warnings.push(format!(
                    "skipping {}: unreadable run record ({e})",
                    path.display()
                )),
            }
        }
        records.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        (records, warnings)
    }

    /// The record of run `id` (the whole id), read alone.
    pub fn read(&self, id: &str) -> Result<RunRecord, String> {
        if !is_id(id) {
            return Err(format!("`{id}` is not a run id"));
        }
        let path = self.run_dir(id).record();
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a run record: {e}", path.display()))
    }

    /// The run named by `spec`: an id, a unique prefix of one, or `latest`.
    pub fn resolve(&self, spec: &str) -> Result<RunRecord, String> {
        let (records, _) = self.list();
        if records.is_empty() {
            return Err(format!("no runs in {}", self.dir.display()));
        }
        if spec == "latest" {
            return Ok(records.into_iter().next().expect("non-empty"));
        }
        let matches: Vec<RunRecord> = records
            .into_iter()
            .filter(|r| r.id.starts_with(spec))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one")),
            0 => Err(format!(
                "no run `{spec}` in {} (try `pipe runs`)",
                self.dir.display()
            )),
            n => Err(format!(
                "`{spec}` matches {n} runs ({}); give more of the id",
                matches
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Writes `sweep` atomically to `runs/<sweep-id>/sweep.json`.
    pub fn write_sweep(&self, sweep: &SweepRecord) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(sweep).map_err(io::Error::other)?;
        fsutil::write_atomic(&self.run_dir(&sweep.id).sweep_record(), &json)
    }

    /// The metrics rows each built-in stage of run `id` recorded as it went
    /// (`logs/<stage>.metrics.jsonl`), by stage name, with their numeric values. A line that is not
    /// a whole JSON object (the one being written as we read) is left out.
    pub fn stage_metrics(&self, id: &str) -> Vec<(String, Vec<BTreeMap<String, f64>>)> {
        if !is_id(id) {
            return Vec::new();
        }
        let suffix = ".metrics.jsonl";
        let mut found: Vec<(String, Vec<BTreeMap<String, f64>>)> =
            fs::read_dir(self.run_dir(id).logs())
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().into_string().ok()?;
                    let stage = name.strip_suffix(suffix)?.to_string();
                    let text = fs::read_to_string(entry.path()).ok()?;
                    let rows = text
                        .lines()
                        .filter_map(|line| {
                            serde_json::from_str::<serde_json::Map<String, Value>>(line).ok()
                        })
                        .map(|row| {
                            row.into_iter()
                                .filter_map(|(k, v)| Some((k, v.as_f64()?)))
                                .collect()
                        })
                        .collect();
                    Some((stage, rows))
                })
                .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// The records of `sweep`'s runs that can be read, in the sweep's order.
    pub fn sweep_runs(&self, sweep: &SweepRecord) -> Vec<RunRecord> {
        sweep
            .runs
            .iter()
            .filter_map(|r| r.run.as_ref())
            .filter_map(|id| self.read(id).ok())
            .collect()
    }

    /// The sweep named by `spec`: its id, a unique prefix of one (with or without `sweep-`), or
    /// `latest`.
    pub fn resolve_sweep(&self, spec: &str) -> Result<SweepRecord, String> {
        let mut ids: Vec<String> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| name.starts_with(SWEEP_PREFIX))
            .collect();
        ids.sort();
        let wanted = if spec == "latest" {
            ids.last().cloned().into_iter().collect::<Vec<_>>()
        } else {
            let spec = spec.strip_prefix(SWEEP_PREFIX).unwrap_or(spec);
            ids.into_iter()
                .filter(|id| id[SWEEP_PREFIX.len()..].starts_with(spec))
                .collect()
        };
        match wanted.as_slice() {
            [id] => {
                let path = self.run_dir(id).sweep_record();
                let bytes =
                    fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{} is not a sweep record: {e}", path.display()))
            }
            [] => Err(format!(
                "no sweep `{spec}` in {} (try `pipe runs`)",
                self.dir.display()
            )),
            many => Err(format!(
                "`{spec}` matches {} sweeps; give more of the id",
                many.len()
            )),
        }
    }

    /// Deletes run `id`'s folder.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        fs::remove_dir_all(self.run_dir(id).path())
    }
}

/// `YYYYMMDD-HHMMSS` in UTC.
fn compact_timestamp(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// An RFC 3339 time as `2026-12-07 12:56:31` (UTC, to the second), for tables.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
}

/// RFC 3339 UTC timestamp of `time`, to the millisecond (so runs in one second still sort).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil(since.as_secs());
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        since.subsec_millis()
    )
}

/// Unix seconds to (year, month, day, hour, minute, second), UTC (Howard Hinnant's days-to-civil).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2026-11-26T19:30:05Z
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_721_405);
        assert_eq!(rfc3339(t), "2026-11-26T19:30:05.000Z");
        assert_eq!(compact_timestamp(1_795_721_405), "20261126-193005");
    }

    #[test]
    fn an_id_that_is_a_path_reads_nothing_outside_runs() {
        let dir = tempfile::tempdir().unwrap();
        let runs = Runs::new(dir.path().join("runs"));
        let id = runs.create().unwrap();
        assert!(is_id(&id) && is_id("sweep-20261207-120830-77c4"));
        // A record outside `runs/` that a crafted `sweep.json` or URL could name.
        fs::create_dir_all(dir.path().join("outside")).unwrap();
        fs::write(dir.path().join("outside/run.json"), "{}").unwrap();
        for bad in ["../outside", "..", "/etc", "a/b", "", "x\\..", "%2e%2e"] {
            let error = runs.read(bad).unwrap_err();
            assert!(error.contains("is not a run id"), "{bad}: {error}");
        }
        // Nor is a record that came from elsewhere (a remote) written outside it.
        let mut record: RunRecord = serde_json::from_value(serde_json::json!({
            "format_version": 1, "id": id, "pipeline": "p.yaml", "status": "succeeded",
            "started_at": "2026-12-07T12:00:00.000Z", "duration_s": 1.0, "params": {},
            "overrides": {}, "targets": [], "pipe_version": "0", "pid": 1, "jobs": 1,
            "executor": "local", "stages": [], "metrics": {}
        }))
        .unwrap();
        runs.write(&record).unwrap();
        record.id = "../outside".into();
        assert!(runs.write(&record).is_err());
    }
}
