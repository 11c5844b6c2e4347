//! `keel`: one binary for a node (`keel node --config FILE`), the operator's CLI, a
//! local development cluster (`keel dev up`) and the benchmarks.
//!
//! Must never panic on bad input: every error is one line on stderr and a non-zero exit.

mod bench;
mod bench_io;
mod cli;
mod commands;
mod dev;
mod events_cmd;
mod files_cmd;
mod log_limit;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if !matches!(&args.command, cli::Command::Node(n) if n.config.is_some()) {
        die_quietly_on_a_closed_pipe();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(commands::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// `keel events | head -1`: when the reader goes away, end as Unix tools do (killed by
/// SIGPIPE, silently) instead of panicking in `println!` (Rust ignores SIGPIPE, so a
/// write to a closed pipe fails and `println!` panics, exit 101). Not for a node
/// process (`keel node --config`), whose sockets must see EPIPE as an error.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: restoring a signal's default disposition before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}
