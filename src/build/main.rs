//! The build script: writes each built-in kind's code fingerprint (see `kind_code.rs`) to
//! `$OUT_DIR/kind_code.rs`, which `pipeline::kinds` includes, and packs the binary's relocations.

#[path = "kind_code.rs"]
mod kind_code;

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    for watched in ["src", "stages", "Cargo.lock", "Cargo.toml"] {
        println!("cargo::rerun-if-changed={watched}");
    }
    // The binary carries about 87,000 relative relocations (polars, plotters); packed (RELR, glibc 2.36
    // and binutils 2.38 or newer) the loader applies them in a fraction of the time, which every
    // short command (a no-op run) pays at start.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let codes = kind_code::fingerprints(&root).expect("the sources can be read");
    let mut text = String::from(
        "/// Each built-in kind's code fingerprint, computed by the build script.\n\
         pub const KIND_CODE: &[(&str, &str)] = &[\n",
    );
    for (kind, code) in codes {
        text.push_str(&format!("    ({kind:?}, {code:?}),\n"));
    }
    text.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("kind_code.rs"), text).expect("OUT_DIR is writable");
}
