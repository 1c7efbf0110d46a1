//! `sentinel bench guard`: the cost of scanning one prompt with the content guards.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use sentinel_dataflows::guard::{ContentGuard, GuardPolicy, PromptClassifier};
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

/// Times the input guard over `iterations` generated prompts of each size, and, with a
/// model, the classifier alone; prints p50/p99 per prompt and per KB.
pub fn guard(sizes: &[usize], iterations: usize, model: Option<&Path>) -> Result<(), String> {
    let classifier = load_classifier(model)?;
    let guard = guard_with(model)?;
    let policy = GuardPolicy::default();
    let mut detectors = vec!["prompt_injection", "pii", "secrets"];
    if classifier.is_some() {
        detectors.push("ml");
    }
    println!("input guard ({}):", detectors.join(", "));
    let rows = time_sizes(sizes, iterations, &|text| guard.input(&policy, text).findings.len())?;
    let mut out = json!({"bench": "guard", "detectors": detectors, "rows": rows});
    if let Some(c) = &classifier {
        println!("classifier alone (normalisation, the rules when the model reads them, features, model):");
        out["classifier_rows"] = json!(time_sizes(sizes, iterations, &|text| usize::from(
            c.probability(text) >= c.threshold()
        ))?);
    }
    println!("{out}");
    Ok(())
}

fn load_classifier(model: Option<&Path>) -> Result<Option<Arc<PromptClassifier>>, String> {
    model
        .map(|m| PromptClassifier::load(m, None, false).map(Arc::new))
        .transpose()
}

/// The input guard, with the classifier of `model` when given.
fn guard_with(model: Option<&Path>) -> Result<ContentGuard, String> {
    Ok(match load_classifier(model)? {
        Some(c) => ContentGuard::new().with_classifier(c),
        None => ContentGuard::new(),
    })
}

/// p50/p99 of `scan` per prompt and p99 per KB, for each prompt size.
fn time_sizes(
    sizes: &[usize],
    iterations: usize,
    scan: &dyn Fn(&str) -> usize,
) -> Result<Vec<serde_json::Value>, String> {
    let mut rows = Vec::new();
    for &size in sizes {
        let prompts: Vec<String> = (0..64).map(|i| prompt(size, i)).collect();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).map_err(|e| e.to_string())?;
        let mut found = 0usize;
        for i in 0..iterations.max(1) {
            let text = &prompts[i % prompts.len()];
            let start = Instant::now();
            found += scan(text);
            let _ = hist.record((start.elapsed().as_nanos() as u64).max(1));
        }
        let (p50, p99) = (
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
        );
        let kb = size as f64 / 1024.0;
        println!(
            "{size:>6} B: p50 {p50:.2} µs, p99 {p99:.2} µs per prompt; p99 {:.2} µs per KB ({found} findings over {iterations} scans)",
            p99 / kb,
        );
        rows.push(json!({"bytes": size, "p50_us": p50, "p99_us": p99, "p99_us_per_kb": p99 / kb}));
    }
    Ok(rows)
}

/// One pass over real prompts: per-prompt and per-KB latency quantiles.
struct PassFigures {
    p50_us: f64,
    p99_us: f64,
    p50_us_per_kb: f64,
    p99_us_per_kb: f64,
}

/// Scans every prompt of `files` twice (cold, then warm automata) with the input guard.
pub fn guard_data(files: &[PathBuf], model: Option<&Path>) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Row {
        text: String,
    }
    let mut prompts = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: Row =
                serde_json::from_str(line).map_err(|e| format!("{}: line {}: {e}", file.display(), n + 1))?;
            prompts.push(row.text);
        }
    }
    if prompts.is_empty() {
        return Err("--data: no prompts".into());
    }
    let guard = guard_with(model)?;
    let policy = GuardPolicy::default();
    let bytes: usize = prompts.iter().map(String::len).sum();
    println!(
        "{} prompts, median {} B, {} KB in all",
        prompts.len(),
        {
            let mut lens: Vec<usize> = prompts.iter().map(String::len).collect();
            lens.sort_unstable();
            lens[lens.len() / 2]
        },
        bytes / 1024
    );
    let mut passes = Vec::new();
    for pass in ["cold", "warm"] {
        let mut per_prompt = Vec::with_capacity(prompts.len());
        let mut per_kb = Vec::with_capacity(prompts.len());
        for text in &prompts {
            let start = Instant::now();
            std::hint::black_box(guard.input(&policy, text));
            let us = start.elapsed().as_secs_f64() * 1e6;
            per_prompt.push(us);
            // Per KB only for prompts of 200 B or more: below that, fixed costs dominate.
            if text.len() >= 200 {
                per_kb.push(us * 1024.0 / text.len() as f64);
            }
        }
        let f = PassFigures {
            p50_us: quantile(&mut per_prompt, 0.5),
            p99_us: quantile(&mut per_prompt, 0.99),
            p50_us_per_kb: quantile(&mut per_kb, 0.5),
            p99_us_per_kb: quantile(&mut per_kb, 0.99),
        };
        println!(
            "  {pass}: p50 {:.2} µs, p99 {:.2} µs per prompt; p50 {:.2} µs, p99 {:.2} µs per KB",
            f.p50_us, f.p99_us, f.p50_us_per_kb, f.p99_us_per_kb
        );
        passes.push(json!({"pass": pass, "p50_us": f.p50_us, "p99_us": f.p99_us,
            "p50_us_per_kb": f.p50_us_per_kb, "p99_us_per_kb": f.p99_us_per_kb}));
    }
    println!(
        "{}",
        json!({"bench": "guard", "data": files, "prompts": prompts.len(), "passes": passes})
    );
    Ok(())
}

/// The `q` quantile of `values` (sorted in place); 0 when empty.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}
