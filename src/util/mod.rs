//! Small building blocks with no knowledge of pipelines: file helpers (atomic writes, JSON reads),
//! the seeded random numbers every stage uses, disjoint sets for grouping, and host names.

pub mod disjoint_sets;
pub mod fsutil;
pub mod net;
pub mod rng;
