//! The `pipe` binary: parse the command line, run it, map errors to the documented exit codes.

use clap::Parser;

fn main() {
    // Output into a closed pipe (`pipe stages | head`) ends pipe quietly, as it does any Unix tool,
    // instead of a panic on the first failed write.
    // SAFETY: signal(2) is called before any thread starts; it only resets SIGPIPE's disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
