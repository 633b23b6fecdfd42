//! pipe: a declarative experiment pipeline runner.
//!
//! A YAML file describes a DAG of stages (shell commands in DVC's syntax, or built-in kinds). Each
//! stage has a key, the blake3 hash of everything that can change its outputs; a stage whose key is
//! in the store is restored instead of run, and every run is recorded under `runs/`.
//!
//! ```text
//!   spec (YAML -> Pipeline) -> dag (checked graph) -> exec (keys, store, workers) -> record (runs/)
//! ```
#![deny(missing_docs)]

pub mod builtin;
pub mod cli;
pub mod compare;
pub mod dag;
pub mod disjoint_sets;
pub mod error;
pub mod exec;
pub mod executor;
pub mod fsutil;
pub mod hash;
pub mod image_table;
pub mod images;
pub mod key;
pub mod kinds;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod predict;
pub mod record;
pub mod report;
pub mod rng;
pub mod run_index;
pub mod slurm;
pub mod spec;
pub mod state;
pub mod store;
pub mod tables;
pub mod term;
pub mod weights;
pub mod workspace;
