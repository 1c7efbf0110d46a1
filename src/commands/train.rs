//! `sentinel train prompt-classifier`: trains the learned prompt-attack detector, reports
//! leave-one-source-out cross-validation, and writes the model file.

use std::path::{Path, PathBuf};

use sentinel_dataflows::guard::{learned_weight, noisy_or, training_vector, InjectionScanner, RiskThresholds};
use sentinel_dataflows::ml::{Example, FeatureCounts, FeatureSpec, LinearModel, ModelFile, SparseVector, TrainConfig};
use sentinel_dataflows::synth::generate_prompts;
use serde_json::json;

use crate::eval::prompts::{is_attack, read_rows};

const HELP: &str = "\
sentinel train prompt-classifier --data FILE.jsonl [FILE...] --calibration FILE [--calibration FILE...]
        [--test FILE...] --out MODEL.bin [--generated N] [--seed S] [--epochs N] [--buckets-log2 B]
        [--char-ngrams MIN-MAX] [--no-rule-features] [--target-fpr F]
    Trains a logistic regression over hashed character 4-grams (--char-ngrams) and word 1-2-grams of the
    normalised prompt, plus the names of the injection rules that fired on it (unless
    --no-rule-features), from lines {\"text\", \"label\", \"source\", \"id\"} (injection and
    jailbreak are attacks).
    --calibration files are benign prompts from sources no model here trains on: the threshold
    of every model (each cross-validation model and the shipped one) is the score that keeps
    --target-fpr (default 0.02) of their benign rows above it. --test files are held out of
    both training and calibration, and are scored by the shipped model at its threshold: the
    honest FPR (and TPR) on prompts it never saw.
    Each --data file is one fold of leave-one-source-out cross-validation: a model trained on
    the other --data files scores it, at its own calibrated threshold; the report gives TPR or
    FPR there and TPR at 1%, 2% and 5% calibration FPR. --generated N (default 4000, 0 for
    none) adds N prompts from the project's own generator (attack families and benign prompts,
    many with trigger words) to every training set. The shipped model is trained on every
    --data file and the generated prompts, and written with the threshold and the report.
    Without --data, trains on generated prompts alone, with threshold 0.5 and no
    cross-validation (for tests). Ends with one JSON line.
";

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let (which, rest) = args.split_first().ok_or(HELP)?;
    if which != "prompt-classifier" {
        return Err(format!("unknown model `{which}`\n\n{HELP}"));
    }
    let mut opts = getopts::Options::new();
    opts.optmulti("", "data", "", "FILE");
    opts.optmulti("", "calibration", "", "FILE");
    opts.optmulti("", "test", "", "FILE");
    opts.optflag("", "no-rule-features", "");
    for name in [
        "out",
        "seed",
        "epochs",
        "buckets-log2",
        "target-fpr",
        "generated",
        "char-ngrams",
    ] {
        opts.optopt("", name, "", "");
    }
    let m = opts.parse(rest).map_err(|e| format!("{e}\n\n{HELP}"))?;
    let mut files: Vec<PathBuf> = m.opt_strs("data").into_iter().map(PathBuf::from).collect();
    files.extend(m.free.iter().map(PathBuf::from));
    let out = PathBuf::from(m.opt_str("out").ok_or_else(|| format!("--out is required\n\n{HELP}"))?);

    let parse = |name: &str| -> Result<Option<f64>, String> {
        m.opt_str(name)
            .map(|v| v.parse::<f64>().map_err(|_| format!("--{name}: `{v}` is not a number")))
            .transpose()
    };
    let mut cfg = TrainConfig::default();
    if let Some(s) = parse("seed")? {
        cfg.seed = s as u64;
    }
    if let Some(e) = parse("epochs")? {
        cfg.epochs = e as u32;
    }
    let mut spec = FeatureSpec::default();
    if let Some(b) = parse("buckets-log2")? {
        spec.buckets_log2 = b as u8;
    }
    if let Some(range) = m.opt_str("char-ngrams") {
        let (lo, hi) = range
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| format!("--char-ngrams: `{range}` is not MIN-MAX"))?;
        (spec.char_min, spec.char_max) = (lo, hi);
    }
    spec.validate().map_err(|e| format!("features: {e}"))?;
    let target_fpr = parse("target-fpr")?.unwrap_or(0.02);

    let generated_count = parse("generated")?.unwrap_or(4000.0) as usize;
    if files.is_empty() && generated_count == 0 {
        return Err(format!("--data FILE or --generated N is required\n\n{HELP}"));
    }
    spec.rule_features = !m.opt_present("no-rule-features");
    let paths = |name: &str| -> Vec<PathBuf> { m.opt_strs(name).into_iter().map(PathBuf::from).collect() };
    let (calibration_files, test_files) = (paths("calibration"), paths("test"));
    if !files.is_empty() && calibration_files.is_empty() {
        return Err(format!(
            "--calibration FILE is required with --data: benign prompts from a source not trained on, to set the threshold\n\n{HELP}"
        ));
    }
    for f in calibration_files.iter().chain(&test_files) {
        if files.contains(f) {
            return Err(format!("{} is both trained on and held out", f.display()));
        }
    }
    let folds = load_folds(&files, &spec)?;
    let calibration = load_folds(&calibration_files, &spec)?;
    let tests = load_folds(&test_files, &spec)?;
    let generated = generated_examples(&spec, cfg.seed, generated_count);
    let calibrate = Calibration::new(&calibration, target_fpr);
    let per_fold = cross_validate(&folds, &generated, spec, &cfg, &calibrate);

    let all: Vec<Example> = folds
        .iter()
        .flat_map(|f| f.examples.iter().cloned())
        .chain(generated.iter().cloned())
        .collect();
    let model = LinearModel::train(spec, &all, &cfg);
    let shipped = calibrate.thresholds(&model);
    let report = Report {
        threshold: shipped.at_target,
        target_fpr,
        per_fold,
        calibration: calibration.iter().map(|f| assess(&model, &shipped, f)).collect(),
        unseen: tests.iter().map(|f| assess(&model, &shipped, f)).collect(),
    };
    print_report(&report);
    let description = json!({
        "model": "prompt-attack logistic regression over hashed n-grams",
        "features": spec_json(&spec),
        "training": {"files": folds.iter().map(|f| json!({"file": f.name, "rows": f.examples.len(),
            "attacks": f.examples.iter().filter(|e| e.attack).count()})).collect::<Vec<_>>(),
            "generated": generated_count, "epochs": cfg.epochs, "learning_rate": cfg.learning_rate, "l2": cfg.l2,
            "seed": cfg.seed},
        "calibration": calibration.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "report": report.json(),
    });
    let file = ModelFile {
        model,
        threshold: report.threshold as f32,
        description: description.to_string(),
    };
    file.save(&out)?;
    let size = std::fs::metadata(&out).map_or(0, |m| m.len());
    println!(
        "wrote {} ({size} bytes), threshold {:.4}",
        out.display(),
        report.threshold
    );
    println!(
        "{}",
        json!({"model": out, "bytes": size, "threshold": report.threshold, "report": report.json()})
    );
    Ok(())
}

fn spec_json(spec: &FeatureSpec) -> serde_json::Value {
    json!({"buckets_log2": spec.buckets_log2, "char_ngrams": [spec.char_min, spec.char_max], "word_ngrams": spec.word_max,
        "rule_features": spec.rule_features})
}

/// One source file: a fold.
struct Fold {
    name: String,
    examples: Vec<Example>,
    /// The rules' score of each example, to report the guard as the job runs it.
    rule_scores: Vec<f32>,
}

/// Features of one text (the n-grams of its canonical form and the rules that fired on it),
/// and the rules' score.
fn featurize(
    counts: &mut FeatureCounts,
    spec: &FeatureSpec,
    rules: &InjectionScanner,
    text: &str,
) -> (SparseVector, f32) {
    rules.scan_then(text, |report, canonical| {
        (training_vector(counts, spec, canonical, &report), report.score)
    })
}

fn load_folds(files: &[PathBuf], spec: &FeatureSpec) -> Result<Vec<Fold>, String> {
    let mut counts = FeatureCounts::default();
    let rules = InjectionScanner::new();
    files
        .iter()
        .map(|path| {
            let (examples, rule_scores) = read_rows(path)?
                .into_iter()
                .map(|row| {
                    let (vector, score) = featurize(&mut counts, spec, &rules, &row.text);
                    let attack = is_attack(&row.label);
                    (Example { vector, attack }, score)
                })
                .unzip();
            Ok(Fold {
                name: file_name(path),
                examples,
                rule_scores,
            })
        })
        .collect()
}

/// The project's generated prompts, featurised.
pub fn generated_examples(spec: &FeatureSpec, seed: u64, count: usize) -> Vec<Example> {
    let mut counts = FeatureCounts::default();
    let rules = InjectionScanner::new();
    generate_prompts(seed, count)
        .into_iter()
        .map(|p| Example {
            vector: featurize(&mut counts, spec, &rules, &p.text).0,
            attack: is_attack(p.label),
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// What training reports.
struct Report {
    /// The shipped model's threshold (from the calibration split).
    threshold: f64,
    target_fpr: f64,
    /// Leave-one-source-out, over the training files.
    per_fold: Vec<FoldResult>,
    /// The shipped model on the calibration files (FPR fitted there, by construction).
    calibration: Vec<FoldResult>,
    /// The shipped model on files it neither trained nor calibrated on.
    unseen: Vec<FoldResult>,
}

struct FoldResult {
    name: String,
    attacks: usize,
    benign: usize,
    /// The threshold it was judged at.
    threshold: f64,
    /// Rate at the threshold: TPR for attacks, FPR for benign rows.
    tpr: Option<f64>,
    fpr: Option<f64>,
    /// TPR at 1%, 2% and 5% FPR on the calibration split.
    tpr_at_fpr: [Option<f64>; 3],
    /// The input guard as the job runs it (rules, and the model's finding at the threshold,
    /// by noisy-OR), flagged at the balanced profile's warn level: TPR and FPR.
    combined: (Option<f64>, Option<f64>),
}

const FPR_POINTS: [f64; 3] = [0.01, 0.02, 0.05];

impl FoldResult {
    fn json(&self) -> serde_json::Value {
        json!({
            "file": self.name, "attacks": self.attacks, "benign": self.benign, "threshold": self.threshold,
            "tpr": self.tpr, "fpr": self.fpr,
            "tpr_at_fpr_1": self.tpr_at_fpr[0], "tpr_at_fpr_2": self.tpr_at_fpr[1], "tpr_at_fpr_5": self.tpr_at_fpr[2],
            "combined_tpr": self.combined.0, "combined_fpr": self.combined.1,
        })
    }
}

impl Report {
    fn json(&self) -> serde_json::Value {
        let all = |v: &[FoldResult]| v.iter().map(FoldResult::json).collect::<Vec<_>>();
        json!({
            "threshold": self.threshold,
            "target_fpr": self.target_fpr,
            "per_fold": all(&self.per_fold),
            "calibration": all(&self.calibration),
            "unseen": all(&self.unseen),
        })
    }
}

/// The smallest threshold that keeps the share of `benign` scores at or above it within `fpr`.
pub fn threshold_at_fpr(benign: &[f64], fpr: f64) -> f64 {
    let mut sorted = benign.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * sorted.len() as f64).floor() as usize;
    match sorted.get(allowed) {
        // Just above the first benign score that must not be flagged.
        Some(&s) => (s + 1e-6).min(1.0),
        None => 0.0,
    }
}

/// The benign rows of the calibration split, which set every model's threshold.
struct Calibration<'a> {
    benign: Vec<&'a SparseVector>,
    target_fpr: f64,
}

/// A model's thresholds: at the target FPR, and at each of [`FPR_POINTS`].
struct Thresholds {
    at_target: f64,
    points: [f64; 3],
}

impl<'a> Calibration<'a> {
    fn new(files: &'a [Fold], target_fpr: f64) -> Self {
        Calibration {
            benign: files
                .iter()
                .flat_map(|f| f.examples.iter().filter(|e| !e.attack).map(|e| &e.vector))
                .collect(),
            target_fpr,
        }
    }

    /// `model`'s thresholds on the calibration rows; 0.5 when there are none (generated-only
    /// training).
    fn thresholds(&self, model: &LinearModel) -> Thresholds {
        if self.benign.is_empty() {
            return Thresholds {
                at_target: 0.5,
                points: [0.5; 3],
            };
        }
        let scores: Vec<f64> = self.benign.iter().map(|v| f64::from(model.probability_of(v))).collect();
        Thresholds {
            at_target: threshold_at_fpr(&scores, self.target_fpr),
            points: FPR_POINTS.map(|p| threshold_at_fpr(&scores, p)),
        }
    }
}

/// `model` on every row of `fold`, at `thresholds`.
fn assess(model: &LinearModel, thresholds: &Thresholds, fold: &Fold) -> FoldResult {
    let threshold = thresholds.at_target;
    let scores: Vec<f64> = fold
        .examples
        .iter()
        .map(|e| f64::from(model.probability_of(&e.vector)))
        .collect();
    let rate =
        |s: &[f64], at: f64| (!s.is_empty()).then(|| s.iter().filter(|x| **x >= at).count() as f64 / s.len() as f64);
    let warn = f64::from(RiskThresholds::default().low);
    let combined: Vec<(bool, f64)> = fold
        .examples
        .iter()
        .zip(&scores)
        .zip(&fold.rule_scores)
        .map(|((e, p), r)| {
            let learned = learned_weight(*p as f32, threshold as f32).unwrap_or(0.0);
            (e.attack, f64::from(noisy_or([*r, learned])))
        })
        .collect();
    let flagged_share = |attack: bool| {
        let of: Vec<f64> = combined.iter().filter(|(a, _)| *a == attack).map(|(_, s)| *s).collect();
        rate(&of, warn)
    };
    let (a, b): (Vec<(&Example, &f64)>, Vec<_>) = fold.examples.iter().zip(&scores).partition(|(e, _)| e.attack);
    let a: Vec<f64> = a.into_iter().map(|(_, s)| *s).collect();
    let b: Vec<f64> = b.into_iter().map(|(_, s)| *s).collect();
    FoldResult {
        name: fold.name.clone(),
        attacks: a.len(),
        benign: b.len(),
        threshold,
        tpr: rate(&a, threshold),
        fpr: rate(&b, threshold),
        tpr_at_fpr: thresholds.points.map(|t| rate(&a, t)),
        combined: (flagged_share(true), flagged_share(false)),
    }
}

/// Leave-one-source-out over the training files: each scored by a model trained without it,
/// at that model's own calibrated threshold.
fn cross_validate(
    folds: &[Fold],
    generated: &[Example],
    spec: FeatureSpec,
    cfg: &TrainConfig,
    calibration: &Calibration<'_>,
) -> Vec<FoldResult> {
    if folds.len() < 2 {
        return Vec::new();
    }
    (0..folds.len())
        .map(|held| {
            let train: Vec<Example> = folds
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != held)
                .flat_map(|(_, f)| f.examples.iter().cloned())
                .chain(generated.iter().cloned())
                .collect();
            let model = LinearModel::train(spec, &train, cfg);
            assess(&model, &calibration.thresholds(&model), &folds[held])
        })
        .collect()
}

fn print_report(r: &Report) {
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    let table = |title: &str, rows: &[FoldResult]| {
        if rows.is_empty() {
            return;
        }
        println!("{title}");
        println!(
            "  {:<44} {:>6} {:>6} {:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>11} {:>11}",
            "file",
            "attack",
            "benign",
            "threshold",
            "tpr",
            "fpr",
            "tpr@1%",
            "tpr@2%",
            "tpr@5%",
            "guard tpr",
            "guard fpr"
        );
        for x in rows {
            println!(
                "  {:<44} {:>6} {:>6} {:>9.4} {:>7} {:>7} {:>9} {:>9} {:>9} {:>11} {:>11}",
                x.name,
                x.attacks,
                x.benign,
                x.threshold,
                f(x.tpr),
                f(x.fpr),
                f(x.tpr_at_fpr[0]),
                f(x.tpr_at_fpr[1]),
                f(x.tpr_at_fpr[2]),
                f(x.combined.0),
                f(x.combined.1)
            );
        }
    };
    println!(
        "threshold {:.4}: {:.1}% of the calibration split's benign rows at or above it",
        r.threshold,
        r.target_fpr * 100.0
    );
    table(
        "leave-one-source-out (each held-out file at its model's calibrated threshold):",
        &r.per_fold,
    );
    table("shipped model on the calibration split (fitted there):", &r.calibration);
    table(
        "shipped model on files it never saw (neither trained nor calibrated on):",
        &r.unseen,
    );
    println!("(guard: rules plus the model's finding, flagged at the balanced warn level 0.5; tpr@N%: at N% calibration FPR)");
}
