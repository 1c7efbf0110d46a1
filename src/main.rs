//! `sentinel`: a streaming guard and anomaly detector for LLM traffic, on timely dataflow.

mod commands;
mod config;
mod delivery;
mod detector_test;
mod eval;
mod io;
mod job;
mod kafka_input;
mod listen;
mod serving;
mod streams;
mod summary;
mod topic_feed;

use std::process::ExitCode;

/// Workers hand records to each other (exchange by key), so memory allocated on one thread is
/// often freed on another; glibc's allocator serialises that through its arenas (measured: a
/// third of two workers' time in malloc and free, and -w 2 ran at 1.2× -w 1).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) if !c.starts_with('-') => (c.as_str(), rest.to_vec()),
        _ => ("help", args.clone()),
    };
    let result = match command {
        "run" => commands::run::main(rest),
        "gen-trace" => commands::gen_trace::main(rest),
        "produce" => commands::produce::main(rest),
        "consume" => commands::consume::main(rest),
        "serve" => commands::serve::main(rest),
        "check-config" => commands::check_config::main(rest),
        "bench" => commands::bench::main(rest),
        "eval" => commands::eval::main(rest),
        "train" => commands::train::main(rest),
        "help" | "--help" => {
            print!("{}", commands::USAGE);
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{}", commands::USAGE)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
