//! `keel`: one binary for a node (`keel node --config FILE`), the operator's CLI, a
//! local development cluster (`keel dev up`), its chaos test (`keel dev chaos`) and the
//! benchmarks.
//!
//! Must never panic on bad input: every error is one line on stderr and a non-zero exit.

mod bench;
mod bench_io;
mod chaos;
mod cli;
mod commands;
mod dev;
mod files_cmd;
mod keys_cmd;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
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

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}
