//! The top-level error and the documented exit codes.
//!
//! | code | meaning                                                        |
//! |------|----------------------------------------------------------------|
//! | 0    | success                                                        |
//! | 1    | the run finished, but a stage failed                           |
//! | 2    | the pipeline file or the command line is invalid               |
//! | 3    | the workspace could not be read or written (I/O, records)      |

use crate::pipeline::{Diagnostics, LoadError};

/// Exit code: everything succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code: a stage failed.
pub const EXIT_STAGE_FAILED: i32 = 1;
/// Exit code: invalid pipeline or arguments.
pub const EXIT_INVALID: i32 = 2;
/// Exit code: I/O or workspace error.
pub const EXIT_IO: i32 = 3;

/// Everything that can stop a pipe command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline has problems (all of them listed).
    #[error("{0}")]
    Spec(Diagnostics),
    /// A bad argument (unknown stage, unknown run, ...).
    #[error("{0}")]
    Usage(String),
    /// The workspace could not be read or written.
    #[error("{0}")]
    Io(String),
}

impl Error {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Usage(_) => EXIT_INVALID,
            Error::Io(_) => EXIT_IO,
        }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        match e {
            LoadError::Read { .. } => Error::Usage(e.to_string()),
            LoadError::Invalid(d) => Error::Spec(d),
        }
    }
}
