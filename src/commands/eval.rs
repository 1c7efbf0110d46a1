//! `sentinel eval nab|pii|prompts`: detection quality on NAB-shaped data and on labeled PII spans.

use std::io::Write;
use std::path::{Path, PathBuf};

use sentinel_dataflows::detect::{StatisticalConfig, StatisticalDetector};

use crate::config::SentinelConfig;
use crate::eval::nab;
use crate::eval::series::windowed_gaussian;

/// The detector `eval nab` runs without `--config`.
const NAB_CONFIG: &str = include_str!("../../examples/nab.yaml");

const HELP: &str = "\
sentinel eval nab --data DIR [--config FILE] [--detector ID] [--reference windowed-gaussian]
                  [--results OUT] [--per-file]
    Runs a statistical detector of a job config (default: examples/nab.yaml, built in; the
    first statistical detector unless --detector names one) over every data/<category>/*.csv
    under DIR, each file its own key and each row one window, with the job's own code
    (baseline, seasonality, cooldown). Prints NAB's standard, reward_low_FP_rate and
    reward_low_FN_rate scores (0 = detects nothing, 100 = perfect) three ways: at the best
    corpus-wide threshold on the row scores (NAB's convention, found exactly), with thresholds
    cross-fitted on two folds of files (each fold flagged at the other's best threshold), and
    for the detector's own alerts (its configured threshold). Then one JSON line.
    --reference windowed-gaussian scores NAB's windowed-Gaussian reference detector instead.
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
    nab_eval(rest)
}

/// The statistical detector `eval nab` runs: `--detector` of `--config`, else the first.
fn nab_detector(config: Option<&str>, id: Option<&str>) -> Result<StatisticalConfig, String> {
    let cfg = match config {
        Some(path) => SentinelConfig::load(Path::new(path)).map_err(|e| e.0)?,
        None => SentinelConfig::parse(NAB_CONFIG).map_err(|e| format!("examples/nab.yaml: {}", e.0))?,
    };
    let detectors = cfg.statistical_detectors();
    let detector = match id {
        Some(id) => detectors
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| format!("--detector: no enabled statistical detector `{id}`"))?,
        None => detectors
            .into_iter()
            .next()
            .ok_or("the config has no enabled statistical detector")?,
    };
    if detector.metric.counts_events() {
        return Err(format!(
            "detector `{}`: metric {} counts events, and its transform does not apply to a series' values; use a metric that does not count (e.g. latency_mean)",
            detector.id,
            detector.metric.as_str()
        ));
    }
    Ok(detector)
}

/// Row scores (0 while a cooldown holds the series back) and the detector's own alerts.
fn run_detector(cfg: &StatisticalConfig, series: &nab::Series) -> (Vec<f64>, Vec<bool>) {
    let mut detector = StatisticalDetector::new(cfg.clone());
    let width = cfg.window_ms.max(1);
    series
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let end = (i as u64 + 1) * width;
            detector
                .judge(&series.name, end, Some(*v), None)
                .map_or((0.0, false), |j| (j.score, j.alert))
        })
        .unzip()
}

fn nab_eval(rest: Vec<String>) -> Result<(), String> {
    let mut opts = getopts::Options::new();
    for name in ["data", "results", "config", "detector", "reference"] {
        opts.optopt("", name, "", "");
    }
    opts.optflag("", "per-file", "");
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
    let reference = match m.opt_str("reference").as_deref() {
        None => false,
        Some("windowed-gaussian") => true,
        Some(other) => return Err(format!("--reference: `{other}` is not windowed-gaussian")),
    };
    let detector = nab_detector(m.opt_str("config").as_deref(), m.opt_str("detector").as_deref())?;
    let corpus = nab::load(&data)?;
    if corpus.is_empty() {
        return Err(format!("{}: no data/<category>/*.csv files", data.display()));
    }
    let (scores, alerts): (Vec<Vec<f64>>, Vec<Vec<bool>>) = corpus
        .iter()
        .map(|s| {
            if reference {
                (windowed_gaussian(&s.values), Vec::new())
            } else {
                run_detector(&detector, s)
            }
        })
        .unzip();
    if let Some(out) = m.opt_str("results") {
        write_results(Path::new(&out), &corpus, &scores)?;
    }
    let best = nab::evaluate(&corpus, &scores);
    let cross = nab::evaluate_cross_fitted(&corpus, &scores);
    let own = (!reference).then(|| nab::evaluate_flags(&corpus, &alerts));
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let name = if reference {
        "windowed-gaussian (NAB reference)".to_owned()
    } else {
        format!(
            "`{}` ({:?}, threshold {})",
            detector.id, detector.baseline.strategy, detector.baseline.threshold
        )
    };
    println!(
        "NAB on {} ({} files, {windows} windows), detector {name}",
        data.display(),
        corpus.len()
    );
    println!(
        "  {:<20} {:>10} {:>12} {:>12}",
        "profile", "best", "cross-fit", "own alerts"
    );
    for (i, r) in best.iter().enumerate() {
        let own_score = own
            .as_ref()
            .map_or_else(|| "-".to_owned(), |o| format!("{:.1}", o[i].score));
        println!(
            "  {:<20} {:>10.1} {:>12.1} {:>12}   (best threshold {:.6})",
            r.profile, r.score, cross[i].score, own_score, r.threshold
        );
    }
    if m.opt_present("per-file") {
        let standard = &nab::PROFILES[0];
        for (series, s) in corpus.iter().zip(&scores) {
            let flags: Vec<bool> = s.iter().map(|v| *v >= best[0].threshold).collect();
            let detections = flags.iter().skip(series.probation()).filter(|f| **f).count();
            println!(
                "    {:<55} {:7.2}  windows {}  detections {detections}",
                series.name,
                nab::score_series(series, &flags, standard),
                series.windows.len()
            );
        }
    }
    let by_profile = |rs: &[nab::ProfileScore]| {
        rs.iter()
            .map(|r| (r.profile.clone(), r.score))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let json = serde_json::json!({
        "benchmark": "nab", "files": corpus.len(), "windows": windows,
        "detector": if reference { "windowed-gaussian".to_owned() } else { detector.id.clone() },
        "scores": by_profile(&best),
        "thresholds": best.iter().map(|r| (r.profile.clone(), r.threshold)).collect::<std::collections::BTreeMap<_, _>>(),
        "cross_fitted": by_profile(&cross),
        "own_alerts": own.as_deref().map(by_profile),
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
