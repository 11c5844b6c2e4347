//! `keel`: one binary for a node (`keel node --config FILE`), the operator's CLI, a
//! local development cluster (`keel dev up`), its chaos test (`keel dev chaos`), the
//! lab of network-namespace hosts (`keel lab`, root only) and the benchmarks.
//!
//! Must never panic on bad input: every error is one line on stderr and a non-zero exit.

mod bench;
mod bench_gw;
mod bench_io;
mod chaos;
mod cli;
mod commands;
mod dev;
mod events_cmd;
mod files_cmd;
mod gateway_servers;
mod keys_cmd;
mod lab_cmd;
mod log_limit;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if !matches!(&args.command, cli::Command::Node(n) if n.config.is_some()) {
        die_quietly_on_a_closed_pipe();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(&args.command, cli::Command::Node(n) if n.config.is_some()) {
        // A node's data path: below its control runtime (see keel_node::runtime).
        builder.on_thread_start(keel_node::runtime::lower_data_thread_priority);
    }
    let rt = match builder.build() {
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
            // A change whose outcome is unknown has its own exit code.
            let unknown = e
                .downcast_ref::<keel_client::ClientError>()
                .is_some_and(|c| c.not_confirmed());
            ExitCode::from(if unknown { NOT_CONFIRMED } else { 1 })
        }
    }
}

/// The exit code of a change whose outcome is unknown ("not confirmed").
const NOT_CONFIRMED: u8 = 3;

/// `keel events | head -1`: when the reader goes away, end quietly as Unix tools do
/// (exit 141, the status of a process killed by SIGPIPE) instead of panicking in
/// `println!` (exit 101). Rust ignores SIGPIPE, so a write to a closed pipe fails and
/// `print!`/`println!` panic with "failed printing to stdout: Broken pipe"; this hook
/// turns that one panic into the quiet exit, for every command at once. SIGPIPE itself
/// stays ignored: restoring its default would also kill the CLI when a member closes
/// a connection during a vectored socket write (writev raises SIGPIPE). Not for a
/// node process (`keel node --config`).
fn die_quietly_on_a_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}
