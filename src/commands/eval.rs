//! `sentinel eval nab|pii|prompts`: detection quality on NAB-shaped data and on labeled PII spans.

use std::io::Write;
use std::path::{Path, PathBuf};

use sentinel_dataflows::detect::Strategy;

use crate::eval::nab;
use crate::eval::series::{windowed_gaussian, SeriesDetector};

const HELP: &str = "\
sentinel eval nab --data DIR [--results OUT] [--strategy zscore|ewma|mad|windowed-gaussian] [--threshold Z] [--cooldown ROWS] [--changes] [--no-seasonal] [--likelihood] [--per-file]
    Scores every data/<category>/*.csv under DIR as its own key with the statistical baselines,
    then prints NAB's standard, reward_low_FP_rate and reward_low_FN_rate scores (0 = detects
    nothing, 100 = perfect), each at its best corpus-wide threshold, and one JSON line.
    --results OUT also writes OUT/sentinel/<category>/sentinel_<file>.csv
    (timestamp,value,anomaly_score), NAB's own results format.
sentinel eval pii --data FILE.jsonl [FILE...] [--pred-out PRED.jsonl]
    Runs the PII scanner over every row (text, spans with start/end/type in code points,
    meta.entity_types_tested) and prints exact-span precision, recall and F1 per entity type the
    file labels and the scanner detects, counting every predicted span of those types in every
    row; then one JSON line with per_entity and micro_f1. --pred-out writes each row's predicted
    spans, {\"id\",\"text\",\"spans\":[{\"start\",\"end\",\"type\",\"score\"}]} in code points, for outside
    scorers.
sentinel eval prompts --data FILE.jsonl [FILE...] [--profile balanced|high_security|performance]
                      [--threshold SCORE] [--pred-out FILE] [--model MODEL.bin [--combined]]
    Runs the prompt-attack guard over every row (text, label, source, id; labels injection and
    jailbreak are attacks) and prints TPR and FPR per file, per source and overall, with the
    count of prompts per decision tier under the profile, and TPR at 1%, 2% and 5% FPR on the
    benign rows given (a threshold sweep). The score is the rules' score; with --model, the
    learned classifier's probability, flagged at the model's threshold; with --model
    --combined, the input guard's injection score as the job computes it (rules and model
    findings by noisy-OR). A prompt is flagged at the profile's warn threshold (the model's
    threshold with --model alone) unless --threshold says otherwise. Ends with one JSON line:
    {\"tpr\", \"fpr\", \"tiers\", \"per_file\", \"per_source\", \"tpr_at_fpr\"}. --pred-out writes one
    line per prompt: {\"id\", \"score\", \"flagged\", \"us\"}.
";

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let (which, rest) = match args.split_first() {
        Some((w, rest)) => (w.as_str(), rest.to_vec()),
        None => ("help", Vec::new()),
    };
    if which == "pii" {
        return pii(rest);
    }
    if which == "prompts" {
        return prompts(rest);
    }
    if which != "nab" {
        print!("{HELP}");
        return if which == "help" || which == "--help" {
            Ok(())
        } else {
            Err(format!("unknown evaluation `{which}`"))
        };
    }
    let mut opts = getopts::Options::new();
    for name in ["data", "results", "strategy", "threshold", "cooldown"] {
        opts.optopt("", name, "", "");
    }
    opts.optflag("", "per-file", "");
    opts.optflag("", "changes", "");
    opts.optflag("", "no-seasonal", "");
    opts.optflag("", "likelihood", "");
    opts.optflag("", "help", "");
    let m = opts.parse(&rest).map_err(|e| format!("{e}\n\n{HELP}"))?;
    if m.opt_present("help") {
        print!("{HELP}");
        return Ok(());
    }
    let data = PathBuf::from(
        m.opt_str("data")
            .ok_or_else(|| format!("--data is required\n\n{HELP}"))?,
    );
    let reference = m.opt_str("strategy").as_deref() == Some("windowed-gaussian");
    let strategy = match m.opt_str("strategy") {
        Some(s) if reference => Strategy::parse("zscore").ok_or(s)?,
        Some(s) => Strategy::parse(&s).ok_or_else(|| format!("--strategy: `{s}`"))?,
        None => Strategy::Zscore,
    };
    let corpus = nab::load(&data)?;
    if corpus.is_empty() {
        return Err(format!("{}: no data/<category>/*.csv files", data.display()));
    }
    let scores: Vec<Vec<f64>> = corpus
        .iter()
        .map(|s| {
            if reference {
                return windowed_gaussian(&s.values);
            }
            let mut d = SeriesDetector::default_for(strategy, s.values.len());
            if let Some(t) = m.opt_str("threshold").and_then(|t| t.parse().ok()) {
                d.level.threshold = t;
            }
            if let Some(c) = m.opt_str("cooldown").and_then(|c| c.parse().ok()) {
                d.cooldown = c;
            }
            d.use_changes = m.opt_present("changes");
            d.seasonal = !m.opt_present("no-seasonal");
            d.likelihood = m.opt_present("likelihood");
            d.score(&s.values)
        })
        .collect();
    if let Some(out) = m.opt_str("results") {
        write_results(Path::new(&out), &corpus, &scores)?;
    }
    let results = nab::evaluate(&corpus, &scores);
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let name = if reference {
        "windowed-gaussian (NAB reference)".to_owned()
    } else {
        format!("{strategy:?}")
    };
    println!(
        "NAB on {} ({} files, {windows} windows), detector {name}",
        data.display(),
        corpus.len()
    );
    for r in &results {
        println!("  {:<20} {:6.1}   (threshold {:.4})", r.profile, r.score, r.threshold);
    }
    if m.opt_present("per-file") {
        let standard = &nab::PROFILES[0];
        for (series, s) in corpus.iter().zip(&scores) {
            let flags: Vec<bool> = s.iter().map(|v| *v >= results[0].threshold).collect();
            let detections = flags.iter().skip(series.probation()).filter(|f| **f).count();
            println!(
                "    {:<55} {:7.2}  windows {}  detections {detections}",
                series.name,
                nab::score_series(series, &flags, standard),
                series.windows.len()
            );
        }
    }
    let json = serde_json::json!({
        "benchmark": "nab", "files": corpus.len(), "windows": windows,
        "scores": results.iter().map(|r| (r.profile.clone(), r.score)).collect::<std::collections::BTreeMap<_, _>>(),
        "thresholds": results.iter().map(|r| (r.profile.clone(), r.threshold)).collect::<std::collections::BTreeMap<_, _>>(),
    });
    println!("{json}");
    Ok(())
}

fn write_results(out: &Path, corpus: &[nab::Series], scores: &[Vec<f64>]) -> Result<(), String> {
    for (series, s) in corpus.iter().zip(scores) {
        let (category, file) = series.name.split_once('/').unwrap_or(("", &series.name));
        let dir = out.join("sentinel").join(category);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("sentinel_{file}"));
        let mut w =
            std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        writeln!(w, "timestamp,value,anomaly_score").map_err(|e| e.to_string())?;
        for ((ts, v), score) in series.timestamps.iter().zip(&series.values).zip(s) {
            writeln!(w, "{ts},{v},{score}").map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn pii(args: Vec<String>) -> Result<(), String> {
    let mut opts = getopts::Options::new();
    opts.optmulti("", "data", "", "FILE");
    opts.optopt("", "pred-out", "", "FILE");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    let mut files = m.opt_strs("data");
    files.extend(m.free.iter().cloned());
    if files.is_empty() {
        return Err(format!("--data FILE is required\n\n{HELP}"));
    }
    let mut pred_out = match m.opt_str("pred-out") {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?,
        )),
        None => None,
    };
    let scanner = sentinel_dataflows::guard::PiiScanner::new();
    let mut total: std::collections::BTreeMap<_, crate::eval::pii::Counts> = Default::default();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let (counts, predictions) = crate::eval::pii::evaluate(&text, &scanner).map_err(|e| format!("{file}: {e}"))?;
        if let Some(w) = pred_out.as_mut() {
            use std::io::Write;
            for p in &predictions {
                serde_json::to_writer(&mut *w, p).map_err(|e| e.to_string())?;
                w.write_all(b"\n").map_err(|e| e.to_string())?;
            }
        }
        for (kind, c) in counts {
            let t = total.entry(kind).or_default();
            t.true_positives += c.true_positives;
            t.gold += c.gold;
            t.predicted += c.predicted;
        }
    }
    println!(
        "{:<16} {:>6} {:>9} {:>6} {:>9} {:>7} {:>6}",
        "entity", "gold", "predicted", "tp", "precision", "recall", "f1"
    );
    let mut micro = crate::eval::pii::Counts::default();
    let mut per_entity = serde_json::Map::new();
    for (kind, c) in &total {
        println!(
            "{:<16} {:>6} {:>9} {:>6} {:>9.3} {:>7.3} {:>6.3}",
            kind.as_str(),
            c.gold,
            c.predicted,
            c.true_positives,
            c.precision(),
            c.recall(),
            c.f1()
        );
        micro.true_positives += c.true_positives;
        micro.gold += c.gold;
        micro.predicted += c.predicted;
        per_entity.insert(
            kind.as_str().to_owned(),
            serde_json::json!({"precision": c.precision(), "recall": c.recall(), "f1": c.f1(), "support": c.gold}),
        );
    }
    println!("micro F1 {:.3} over the types above", micro.f1());
    println!(
        "{}",
        serde_json::json!({"per_entity": per_entity, "micro_f1": micro.f1()})
    );
    Ok(())
}

fn prompts(args: Vec<String>) -> Result<(), String> {
    use sentinel_dataflows::guard::{noisy_or, InjectionScanner, Profile, PromptClassifier, Tier};
    let mut opts = getopts::Options::new();
    opts.optmulti("", "data", "", "FILE");
    for name in ["profile", "threshold", "pred-out", "model"] {
        opts.optopt("", name, "", "");
    }
    opts.optflag("", "combined", "");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    let mut files = m.opt_strs("data");
    files.extend(m.free.iter().cloned());
    if files.is_empty() {
        return Err(format!("--data FILE is required\n\n{HELP}"));
    }
    let profile = match m.opt_str("profile") {
        Some(p) => Profile::parse(&p).ok_or_else(|| format!("--profile: unknown profile `{p}`"))?,
        None => Profile::Balanced,
    };
    let thresholds = profile.thresholds();
    let classifier = m
        .opt_str("model")
        .map(|path| PromptClassifier::load(Path::new(&path), None, false))
        .transpose()?;
    let combined = m.opt_present("combined");
    if combined && classifier.is_none() {
        return Err("--combined needs --model".into());
    }
    let flag_at = match (m.opt_str("threshold"), &classifier) {
        (Some(t), _) => t
            .parse::<f32>()
            .map_err(|_| format!("--threshold: `{t}` is not a number"))?,
        (None, Some(c)) if !combined => c.threshold(),
        (None, _) => thresholds.low,
    };
    let scanner = InjectionScanner::new();
    let score = |text: &str| -> f32 {
        match &classifier {
            None => scanner.scan(text).score,
            Some(c) if !combined => c.probability(text),
            Some(c) => {
                let rules = scanner.scan(text).findings.into_iter().map(|f| f.weight);
                let learned = c.finding(text).map(|f| f.weight());
                noisy_or(rules.chain(learned))
            }
        }
    };
    let mut eval = crate::eval::prompts::Evaluation::default();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let name = Path::new(file)
            .file_name()
            .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
        crate::eval::prompts::evaluate_file(&name, &text, &score, &thresholds, flag_at, &mut eval)
            .map_err(|e| format!("{file}: {e}"))?;
    }
    let rate = |r: Option<f64>| r.map_or("-".to_owned(), |v| format!("{v:.3}"));
    let tiers = |r: &crate::eval::prompts::Rates| {
        Tier::ALL
            .iter()
            .map(|t| format!("{} {}", t.as_str(), r.tiers.get(t.as_str()).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("prompt guard, profile {profile:?}, flagged at score >= {flag_at}");
    println!(
        "{:<44} {:>6} {:>7} {:>6} {:>7}   tiers",
        "file", "attack", "tpr", "benign", "fpr"
    );
    for (name, r) in &eval.per_file {
        println!(
            "{name:<44} {:>6} {:>7} {:>6} {:>7}   {}",
            r.positives,
            rate(r.tpr()),
            r.negatives,
            rate(r.fpr()),
            tiers(r)
        );
    }
    println!("per source:");
    for (source, r) in &eval.per_source {
        let source: String = source.chars().take(60).collect();
        println!(
            "  {source:<60} {:>6} {:>7} {:>6} {:>7}",
            r.positives,
            rate(r.tpr()),
            r.negatives,
            rate(r.fpr())
        );
    }
    let all = eval.overall();
    println!(
        "overall: tpr {} on {} attacks, fpr {} on {} benign; {}",
        rate(all.tpr()),
        all.positives,
        rate(all.fpr()),
        all.negatives,
        tiers(&all)
    );
    let mut sweep = serde_json::Map::new();
    for fpr in [0.01, 0.02, 0.05] {
        if let Some((tpr, threshold)) = crate::eval::prompts::tpr_at_fpr(&eval.predictions, fpr) {
            println!("at {:.0}% FPR: tpr {tpr:.3} (threshold {threshold:.4})", fpr * 100.0);
            sweep.insert(
                format!("{}", (fpr * 100.0) as u32),
                serde_json::json!({"tpr": tpr, "threshold": threshold}),
            );
        }
    }
    let mut us: Vec<f64> = eval.predictions.iter().map(|p| p.us).collect();
    us.sort_by(f64::total_cmp);
    if let (Some(p50), Some(p99)) = (us.get(us.len() / 2), us.get(us.len() * 99 / 100)) {
        println!("scan time per prompt: p50 {p50:.1} us, p99 {p99:.1} us");
    }
    if let Some(path) = m.opt_str("pred-out") {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?);
        for p in &eval.predictions {
            serde_json::to_writer(&mut w, p).map_err(|e| e.to_string())?;
            writeln!(w).map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| format!("{path}: {e}"))?;
    }
    let mut json = eval.json();
    json["tpr_at_fpr"] = serde_json::Value::Object(sweep);
    println!("{json}");
    Ok(())
}
