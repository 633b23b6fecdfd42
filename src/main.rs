//! The `pipe` binary: parse the command line, run it, map errors to the documented exit codes.

use std::io::Write;

use clap::Parser;

fn main() {
    let cli = pipe::cli::Cli::parse();
    let code = match pipe::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // An error message to a closed stderr is lost; the exit code still says what failed.
            let _ = writeln!(std::io::stderr(), "{}", e.to_string().trim_end());
            e.exit_code()
        }
    };
    std::process::exit(code);
}
