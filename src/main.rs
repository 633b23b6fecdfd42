//! The `pipe` binary: parse the command line, run it, map errors to the documented exit codes.

use clap::Parser;

fn main() {
    let cli = pipe::cli::Cli::parse();
    let code = match pipe::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.to_string().trim_end());
            e.exit_code()
        }
    };
    std::process::exit(code);
}
