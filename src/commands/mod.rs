//! Subcommands.

pub mod bench;
pub mod bench_actions;
pub mod bench_guard;
pub mod bench_judges;
pub mod bench_kafka;
pub mod bench_serve;
pub mod check_config;
pub mod consume;
pub mod eval;
pub mod gen_trace;
pub mod produce;
pub mod run;
pub mod serve;
pub mod train;

/// Top-level help.
pub const USAGE: &str = "\
sentinel: real-time anomaly detection and guarding for LLM traffic

USAGE:
  sentinel run [--config FILE] [--input synthetic|file:PATH|kafka:TOPICS] [--output stdout|file:DIR|kafka]
               [--brokers HOST:PORT] [--exit-when-caught-up] [-w N] [-n N -p I -h HOSTS] [...]
  sentinel serve [--config FILE] [--listen ADDR] [--brokers HOST:PORT] [--store FILE]
  sentinel produce FILE [--brokers HOST:PORT] [--topic T]
  sentinel consume TOPIC [--brokers HOST:PORT]
  sentinel gen-trace --events N --seed S --out FILE [--labels FILE] [...]
  sentinel check-config FILE
  sentinel bench throughput|memory|kafka|guard|judges [...]
  sentinel eval nab|pii|prompts --data ... [...]
  sentinel train prompt-classifier --data FILE.jsonl... --out MODEL.bin

Run `sentinel <command> --help` for a command's options.
";
