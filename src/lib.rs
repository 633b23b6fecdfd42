//! pipe: a declarative experiment pipeline runner.
//!
//! A YAML file describes a DAG of stages (shell commands in DVC's syntax, or built-in kinds). Each
//! stage has a key, the blake3 hash of everything that can change its outputs; a stage whose key is
//! in the store is restored instead of run (or fetched from a team's remote cache), and every run is
//! recorded under `runs/`.
//!
//! ```text
//!   spec (YAML -> Pipeline) -> dag (checked graph) -> exec (keys, store, workers) -> record (runs/)
//! ```
#![deny(missing_docs)]

pub mod builtin;
pub mod cli;
pub mod error;
pub mod images;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod plot;
pub mod predict;
pub mod records;
pub mod remote;
pub mod report;
pub mod run;
pub mod store;
pub mod tables;
pub mod ui;
pub mod util;
pub mod weights;
