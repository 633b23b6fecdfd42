//! Small building blocks with no knowledge of pipelines: file helpers (atomic writes, JSON reads),
//! the seeded random numbers every stage uses, and disjoint sets for grouping.

pub mod disjoint_sets;
pub mod fsutil;
pub mod rng;
