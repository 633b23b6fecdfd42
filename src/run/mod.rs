//! Running a pipeline: the scheduler walks the graph and evaluates each stage (key, store lookup,
//! restore or run), executors carry out the stages that must run (here, or as Slurm jobs), and the
//! run's record is completed from the stages' results.

pub mod context;
pub mod evaluate;
pub mod events;
pub mod executor;
pub mod gc;
pub mod groups;
pub mod local;
pub mod outcome;
pub mod recorder;
pub mod request;
pub mod sandbox;
pub mod scheduler;
pub mod slots;
pub mod slurm;
pub mod sweep;
pub mod workspace;
