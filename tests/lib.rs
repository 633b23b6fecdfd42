//! The integration tests: one binary (`autotests = false`) that drives the real `pipe` executable in
//! temporary workspaces.

mod architecture;
mod browser;
mod cache;
mod crash;
mod dag;
mod data_stages;
mod kind_code;
mod model;
mod pipelines;
mod quoting;
mod reliability;
mod remote;
mod report;
mod runs;
mod scheduler;
mod slurm;
mod spec_errors;
mod sweep;
mod test;
mod ui;
mod weights;
