//! Files under `runs/` by the path a browser asks for. Only files are served: a path that climbs
//! (`..`), is absolute, holds a backslash or a NUL, names a folder, or leads through a symbolic link
//! to somewhere outside `runs/` is refused.

use std::path::{Component, Path, PathBuf};

/// Why a path is not served: the HTTP status and what to say.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400 (a malformed path), 403 (outside `runs/`) or 404.
    pub status: u16,
    /// One line for the error page.
    pub why: String,
}

fn refuse(status: u16, why: &str) -> Refusal {
    Refusal {
        status,
        why: why.to_string(),
    }
}

/// The file `rel` (a decoded path relative to `runs/`) names, checked to be a file inside `runs`.
pub fn resolve(runs: &Path, rel: &str) -> Result<PathBuf, Refusal> {
    if rel.contains('\\') || rel.contains('\0') {
        return Err(refuse(400, "the path holds a backslash or a NUL"));
    }
    let relative = Path::new(rel);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(refuse(
            400,
            "only plain names are allowed in a path (no `..`, `.` or `/` first)",
        ));
    }
    let base = runs
        .canonicalize()
        .map_err(|_| refuse(404, "there is no runs folder"))?;
    let full = base
        .join(relative)
        .canonicalize()
        .map_err(|_| refuse(404, "no such file"))?;
    if !full.starts_with(&base) {
        return Err(refuse(403, "the path leads outside runs/"));
    }
    if !full.is_file() {
        return Err(refuse(404, "not a file (folders are not listed)"));
    }
    Ok(full)
}

/// The media type a file is served as, by its extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" | "log" | "txt" | "stdout" | "stderr" | "yaml" | "sh" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_runs_are_served() {
        let ws = tempfile::tempdir().unwrap();
        let runs = ws.path().join("runs");
        std::fs::create_dir_all(runs.join("r1/report")).unwrap();
        std::fs::write(runs.join("r1/report/a.png"), "png").unwrap();
        std::fs::write(ws.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(ws.path().join("secret.txt"), runs.join("r1/out")).unwrap();
        std::os::unix::fs::symlink(runs.join("r1/report/a.png"), runs.join("r1/in.png")).unwrap();
        assert_eq!(
            resolve(&runs, "r1/report/a.png").unwrap(),
            runs.canonicalize().unwrap().join("r1/report/a.png")
        );
        assert!(
            resolve(&runs, "r1/in.png").is_ok(),
            "a link that stays inside is fine"
        );
        assert_eq!(resolve(&runs, "../secret.txt").unwrap_err().status, 400);
        assert_eq!(
            resolve(&runs, "r1/../../secret.txt").unwrap_err().status,
            400
        );
        assert_eq!(resolve(&runs, "/etc/passwd").unwrap_err().status, 400);
        assert_eq!(resolve(&runs, "r1\\..\\x").unwrap_err().status, 400);
        assert_eq!(resolve(&runs, "r1/out").unwrap_err().status, 403);
        assert_eq!(resolve(&runs, "r1/report").unwrap_err().status, 404);
        assert_eq!(resolve(&runs, "r1/nothing.png").unwrap_err().status, 404);
    }
}
