//! Standard output of the commands that list and show. pipe leaves SIGPIPE ignored (Rust's default),
//! so that a connection dropped under a remote upload is an error the command reports and not the
//! silent end of the process; a reader that stops early instead (`pipe runs | head`) ends the command
//! here, quietly, with the status a shell gives a tool that SIGPIPE ended (141).

use std::fmt;
use std::io::{ErrorKind, Write};

/// The status of a command whose reader went away: 128 + SIGPIPE, as shells report it.
const EXIT_READER_GONE: i32 = 128 + libc::SIGPIPE;

/// Writes `text` to standard output; ends pipe when it cannot.
pub fn write(text: fmt::Arguments<'_>) {
    if let Err(e) = std::io::stdout().lock().write_fmt(text) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(EXIT_READER_GONE);
        }
        eprintln!("pipe: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!($($arg)*))
    };
}

/// `println!` through [`write`].
macro_rules! outln {
    () => {
        $crate::cli::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
