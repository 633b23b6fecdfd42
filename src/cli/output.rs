//! What the commands write besides a run's lines ([`super::terminal`]): standard output of the
//! commands that list and show, and their messages on standard error. pipe leaves SIGPIPE ignored
//! (Rust's default), so that a connection dropped under a remote upload is an error the command
//! reports and not the silent end of the process. A reader of standard output that stops early
//! (`pipe runs | head`) ends the command here, quietly, with the status a shell gives a tool that
//! SIGPIPE ended (141); a reader of standard error that goes away (`pipe run ... 2>&1 | head`) loses
//! the messages and the command goes on.

use std::fmt;
use std::io::{ErrorKind, Write};

use crate::error::EXIT_IO;

/// The status of a command whose reader went away: 128 + SIGPIPE, as shells report it.
pub const EXIT_READER_GONE: i32 = 128 + libc::SIGPIPE;

/// Writes `bytes` to standard output; ends pipe when it cannot.
pub fn write_bytes(bytes: &[u8]) {
    if let Err(e) = std::io::stdout().lock().write_all(bytes) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(EXIT_READER_GONE);
        }
        error(format_args!("pipe: cannot write to standard output: {e}\n"));
        std::process::exit(EXIT_IO);
    }
}

/// Writes `text` to standard output; ends pipe when it cannot.
pub fn write(text: fmt::Arguments<'_>) {
    match text.as_str() {
        Some(text) => write_bytes(text.as_bytes()),
        None => write_bytes(text.to_string().as_bytes()),
    }
}

/// Writes `text` to standard error, if anyone reads it.
pub fn error(text: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

/// `println!` through [`write`].
macro_rules! outln {
    () => {
        $crate::cli::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`error`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::error(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};
