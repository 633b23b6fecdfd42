//! The pipelines shipped in `pipelines/` run on a fresh checkout and rerun nothing when unchanged.

use crate::test::Ws;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn fracture_pipeline_runs_end_to_end_and_then_only_what_changed() {
    let ws = Ws::new();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines"),
        &ws.file("pipelines"),
    );
    ws.ok(&["run", "pipelines/fracture.yaml"]);
    assert_eq!(ws.with_status("ran"), ["ingest", "validate", "split"]);
    let manifest = ws.read("tables/manifest.csv");
    assert_eq!(manifest.lines().count(), 1 + 2 * 24, "{manifest}");
    let split = ws.latest()["metrics"]["split"].clone();
    assert_eq!(
        split["train"].as_i64().unwrap()
            + split["val"].as_i64().unwrap()
            + split["test"].as_i64().unwrap(),
        48
    );
    ws.ok(&["run", "pipelines/fracture.yaml", "--set", "split.test=0.25"]);
    assert_eq!(ws.with_status("ran"), ["split"]);
    assert_eq!(ws.latest()["metrics"]["split"]["test"], 12);
    // Same seed, same data: regenerating gives byte-identical images, so nothing downstream reruns.
    ws.ok(&["run", "pipelines/fracture.yaml", "--force", "ingest"]);
    assert_eq!(ws.with_status("ran"), ["ingest"]);
}
