//! Subcommands.

pub mod bench;
pub mod check_config;
pub mod eval;
pub mod gen_trace;
pub mod run;

/// Top-level help.
pub const USAGE: &str = "\
sentinel: real-time anomaly detection and guarding for LLM traffic

USAGE:
  sentinel run [--config FILE] [--input synthetic|file:PATH] [--output stdout|file:DIR] [-w N] [...]
  sentinel gen-trace --events N --seed S --out FILE [--labels FILE] [...]
  sentinel check-config FILE
  sentinel bench throughput|memory [...]
  sentinel eval nab --data DIR [--results OUT]

Run `sentinel <command> --help` for a command's options.
";
