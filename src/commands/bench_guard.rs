//! `sentinel bench guard`: the cost of scanning one prompt with the content guards.

use std::time::Instant;

use hdrhistogram::Histogram;
use sentinel_dataflows::guard::{ContentGuard, GuardPolicy};
use serde_json::json;

/// Words prompts are made of, with PII values among them now and then.
const WORDS: &[&str] = &[
    "please",
    "summarise",
    "the",
    "following",
    "report",
    "for",
    "our",
    "customer",
    "meeting",
    "and",
    "list",
    "three",
    "action",
    "items",
    "with",
    "owners",
    "deadline",
    "next",
    "week",
    "thanks",
    "invoice",
    "account",
    "number",
    "server",
    "error",
    "logs",
    "show",
    "timeout",
    "after",
    "retry",
    "version",
    "2.3.1",
    "at",
    "12:30",
];
const VALUES: &[&str] = &[
    "jo.lee@example.com",
    "4111 1111 1111 1111",
    "078-05-1123",
    "10.0.0.12",
    "GB82 WEST 1234 5698 7654 32",
];

/// A prompt of about `bytes` bytes: words, with a PII value every ~60 words.
pub fn prompt(bytes: usize, seed: u64) -> String {
    let mut s = String::with_capacity(bytes + 32);
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut n = 0u64;
    while s.len() < bytes {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        n += 1;
        let word = if n.is_multiple_of(60) {
            VALUES[(x >> 33) as usize % VALUES.len()]
        } else {
            WORDS[(x >> 33) as usize % WORDS.len()]
        };
        s.push_str(word);
        s.push(' ');
    }
    s.truncate(bytes);
    while !s.is_char_boundary(s.len()) {
        s.pop();
    }
    s
}

/// Times `scan` over `iterations` prompts of each size; prints p50/p99 per prompt and per KB.
pub fn guard(sizes: &[usize], iterations: usize) -> Result<(), String> {
    let guard = ContentGuard::new();
    let policy = GuardPolicy::default();
    let mut rows = Vec::new();
    for &size in sizes {
        let prompts: Vec<String> = (0..64).map(|i| prompt(size, i)).collect();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).map_err(|e| e.to_string())?;
        let mut found = 0usize;
        for i in 0..iterations.max(1) {
            let text = &prompts[i % prompts.len()];
            let start = Instant::now();
            found += guard.input(&policy, text).findings.len();
            let _ = hist.record((start.elapsed().as_nanos() as u64).max(1));
        }
        let (p50, p99) = (
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
        );
        let kb = size as f64 / 1024.0;
        println!(
            "{size:>6} B: p50 {p50:.2} µs, p99 {p99:.2} µs per prompt; p99 {:.2} µs per KB ({} findings over {} scans)",
            p99 / kb,
            found,
            iterations
        );
        rows.push(json!({"bytes": size, "p50_us": p50, "p99_us": p99, "p99_us_per_kb": p99 / kb}));
    }
    println!(
        "{}",
        json!({"bench": "guard", "detectors": ["prompt_injection", "pii", "secrets"], "rows": rows})
    );
    Ok(())
}
