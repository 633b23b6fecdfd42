//! Built-in kinds are keyed by the fingerprint of their code (`src/build/kind_code.rs`): the three
//! changes that once shipped without the hand-bumped `version:` they needed are replayed on a copy
//! of the sources and each changes its kind's code; changes that cannot change a kind's outputs (the
//! CLI, another kind, a comment, formatting) leave it as it was.

#[path = "../src/build/kind_code.rs"]
mod fingerprint;

use std::collections::BTreeMap;
use std::path::Path;

/// A copy of what the fingerprints are computed from.
fn sources() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root.join(file), dir.path().join(file)).unwrap();
    }
    for folder in ["src", "stages"] {
        crate::pipelines::copy_dir(&root.join(folder), &dir.path().join(folder));
    }
    dir
}

fn codes(root: &Path) -> BTreeMap<String, String> {
    fingerprint::fingerprints(root)
        .unwrap()
        .into_iter()
        .collect()
}

/// The kinds whose code changes when `file` under `root` has `from` replaced by `to`.
fn changed_by(file: &str, from: &str, to: &str) -> Vec<String> {
    let dir = sources();
    let before = codes(dir.path());
    let path = dir.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} no longer contains {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let after = codes(dir.path());
    assert_eq!(before.len(), 8, "{before:?}");
    before
        .keys()
        .filter(|kind| before[*kind] != after[*kind])
        .cloned()
        .collect()
}

#[test]
fn the_built_binary_carries_the_fingerprints_of_its_sources() {
    let shipped = pipe::pipeline::kinds::all();
    let now = codes(Path::new(env!("CARGO_MANIFEST_DIR")));
    for kind in shipped {
        assert_eq!(kind.code, now[&kind.kind], "{}", kind.kind);
    }
}

#[test]
fn the_synthetic_swelling_rewrite_changes_ingest() {
    // cc942c2 reshaped the swelling; `ingest` stayed at v3 and old workspaces kept the old images.
    let changed = changed_by(
        "src/images/synth.rs",
        "self.widening * (-((u - self.at) / self.reach).powi(2)).exp()",
        "self.widening * (-((u - self.at) / self.reach).abs()).exp()",
    );
    assert!(changed.contains(&"ingest".to_string()), "{changed:?}");
    assert!(!changed.contains(&"validate".to_string()), "{changed:?}");
}

#[test]
fn the_near_duplicate_threshold_change_changes_validate() {
    // d6ea81d moved the threshold 0.95 -> 0.96 in code; `validate` stayed at v1.
    let changed = changed_by(
        "src/images/dhash.rs",
        "DEFAULT_MIN_CORRELATION: f32 = 0.96",
        "DEFAULT_MIN_CORRELATION: f32 = 0.95",
    );
    assert!(changed.contains(&"validate".to_string()), "{changed:?}");
    assert!(!changed.contains(&"train".to_string()), "{changed:?}");
}

#[test]
fn the_gemm_upgrade_changes_the_stages_that_run_the_network_only() {
    // 878004a moved gemm 0.15 -> 0.19 with AVX-512 kernels; `train` stayed at v2. Replayed backwards:
    // the crate's line in Cargo.toml, then only its locked version.
    let manifest_line = "gemm = { version = \"0.19\", default-features = false, features = [\"std\", \"rayon\", \"x86-v4\"] }";
    let changed = changed_by("Cargo.toml", manifest_line, "gemm = \"0.15\"");
    // validate runs the network too (its embedding copy detector).
    assert_eq!(changed, ["evaluate", "train", "validate"]);
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|b| b.contains("name = \"gemm\"\n"))
        .and_then(|b| b.lines().find(|l| l.starts_with("version")))
        .unwrap()
        .to_string();
    let changed = changed_by(
        "Cargo.lock",
        &format!("name = \"gemm\"\n{version}"),
        "name = \"gemm\"\nversion = \"0.15.6\"",
    );
    assert_eq!(changed, ["evaluate", "train", "validate"]);
}

#[test]
fn changes_that_cannot_change_outputs_keep_every_kind() {
    assert_eq!(
        changed_by("src/cli/render.rs", "fn ", "fn  "),
        Vec::<String>::new()
    );
    // A comment and a reformatting inside the model.
    assert_eq!(
        changed_by("src/model/ops.rs", "//", "// reworded:"),
        Vec::<String>::new()
    );
    assert_eq!(
        changed_by("src/model/ops.rs", "{\n", "{\n\n    "),
        Vec::<String>::new()
    );
    // Another kind's code.
    let changed = changed_by("src/builtin/split.rs", "fn ", "fn _renamed_");
    assert_eq!(changed, ["split"]);
}

#[test]
fn a_kind_that_names_another_kinds_code_follows_it() {
    // `evaluate` reads the checkpoint by the name `train` gives it.
    let changed = changed_by(
        "src/builtin/train.rs",
        "pub const CHECKPOINT: &str = \"model.safetensors\"",
        "pub const CHECKPOINT: &str = \"weights.safetensors\"",
    );
    assert_eq!(changed, ["evaluate", "train"]);
}

#[test]
fn a_kind_with_a_folder_of_its_own_is_its_own_code_and_no_other_kinds() {
    // validate moved to src/builtin/validate/: its files must key validate alone. Before kind files
    // could be folders, validate's own code keyed every kind through the registry, and not itself.
    let changed = changed_by(
        "src/builtin/validate/embedding.rs",
        "const BIN: f32 = 0.01;",
        "const BIN: f32 = 0.02;",
    );
    assert_eq!(changed, ["validate"]);
}
