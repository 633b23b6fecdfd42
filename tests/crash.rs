//! The crash matrix: pipe killed (SIGKILL, through the test-only `PIPE_TEST_CRASH_AT`) at each step
//! of committing a stage to the store and of restoring one from it, then run again. Nothing is ever
//! half restored, every entry's objects are there with the bytes their names promise, and the rerun
//! ends with the right outputs and the right record.

use std::path::Path;

use crate::test::Ws;

const PIPELINE: &str = r#"
stages:
  make:
    cmd: mkdir -p out && echo alpha > out/a.txt && echo beta > out/b.txt
    outs: [out]
  after:
    cmd: cat out/a.txt out/b.txt > final.txt
    deps: [out]
    outs: [final.txt]
"#;

/// Every entry in the store: each cached file's object exists and hashes to its name.
fn assert_store_consistent(ws: &Ws) {
    let stages = ws.file(".pipe/stages");
    for shard in std::fs::read_dir(&stages).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // an entry still being written, under a temporary name
            }
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
            for output in json["cached"].as_array().unwrap() {
                let tree = &json["outputs"][output.as_str().unwrap()];
                for file in tree["files"].as_array().unwrap() {
                    let hash = file["hash"].as_str().unwrap();
                    let object = ws.file(&format!(".pipe/objects/{}/{hash}", &hash[..2]));
                    let bytes = std::fs::read(&object)
                        .unwrap_or_else(|e| panic!("{name}: object {hash} missing: {e}"));
                    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), hash, "{name}");
                }
            }
        }
    }
    // No object under its final name with other bytes.
    for shard in std::fs::read_dir(ws.file(".pipe/objects"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for object in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let hash = object.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(object.path()).unwrap();
            assert_eq!(blake3::hash(&bytes).to_hex().as_str(), hash);
        }
    }
}

fn crash_at(ws: &Ws, point: &str) {
    let out = ws
        .command(&["run", "p.yaml"])
        .env("PIPE_TEST_CRASH_AT", point)
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{point}: pipe was not killed: {out:?}"
    );
}

/// `out/` is whole or absent: never some of its files, never a file with other bytes.
fn assert_whole_or_absent(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!(
        (read("a.txt"), read("b.txt")),
        ("alpha\n".into(), "beta\n".into())
    );
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 2);
}

fn assert_reruns_to_the_right_end(ws: &Ws) {
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.read("final.txt"), "alpha\nbeta\n");
    assert_eq!(ws.latest()["status"], "succeeded");
    assert_store_consistent(ws);
    ws.ok(&["run", "p.yaml"]);
    assert_eq!(ws.with_status("cached"), ["make", "after"]);
}

#[test]
fn a_crash_at_any_step_of_a_commit_leaves_a_consistent_store() {
    for point in ["object-copied", "object-renamed", "entry-written"] {
        let ws = Ws::new();
        ws.write("p.yaml", PIPELINE);
        crash_at(&ws, point);
        assert_store_consistent(&ws);
        let entries = ws.store_entries("make");
        assert_eq!(entries, usize::from(point == "entry-written"), "{point}");
        assert_reruns_to_the_right_end(&ws);
    }
}

#[test]
fn a_crash_at_any_step_of_a_restore_leaves_nothing_half_restored() {
    for point in ["restore-copied", "restore-removed"] {
        let ws = Ws::new();
        ws.write("p.yaml", PIPELINE);
        ws.ok(&["run", "p.yaml"]);
        // An edited output: restoring it removes the edit and puts the stored output back.
        ws.write("out/a.txt", "edited\n");
        crash_at(&ws, point);
        let out = ws.file("out");
        if point == "restore-copied" {
            // The crash came while the copy was assembled aside: the workspace is as it was.
            assert_eq!(ws.read("out/a.txt"), "edited\n");
        } else {
            assert_whole_or_absent(&out);
        }
        assert_store_consistent(&ws);
        assert_reruns_to_the_right_end(&ws);
        assert_whole_or_absent(&out);
        assert!(out.exists());
    }
}
