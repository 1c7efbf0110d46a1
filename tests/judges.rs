//! The shadow-agent judges in the job, against a real OpenAI-compatible server on loopback:
//! escalated decisions carry analyses, the judge sees only redacted excerpts, nothing of the
//! excerpt reaches an output, a journal replay gives the same decisions, and a provider that
//! is down fails open or closed as configured.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{judged_trace as trace, read_json, read_jsonl, sentinel, RISKY};
use sentinel_dataflows::guard::PiiScanner;
use sentinel_judges::loopback::{openai_reply, verdict, Answer, ProviderServer};
use serde_json::Value;

fn config(dir: &Path, name: &str, base_url: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "detectors: []\nshadow_agents:\n  enabled: true\n  llm_provider: local\n  llm_model: judge-model\n  llm_base_url: {base_url}\n  timeout_ms: 5000\n{extra}"
        ),
    )
    .unwrap();
    path
}

fn run(config: &Path, trace: &Path, out: &Path, extra: &[&str]) -> Value {
    let summary = out.with_extension("summary.json");
    let mut args = vec![
        "run".to_owned(),
        "--no-progress".into(),
        "--config".into(),
        config.display().to_string(),
        "--input".into(),
        format!("file:{}", trace.display()),
        "--output".into(),
        format!("file:{}", out.display()),
        "--summary".into(),
        summary.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sentinel(&args);
    read_json(&summary)
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn escalated_requests_are_judged_on_redacted_text_and_a_replay_decides_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let trace = trace(dir.path());
    // A judge that finds sessions benign and prompts critical, except a confident all-clear
    // for the ones about developer mode.
    let server = ProviderServer::start(|_, body| {
        let text = body.to_string();
        let session = text.contains("judge the session's recent steps");
        let risk = if session || text.contains("developer mode") {
            0.3
        } else {
            0.97
        };
        Answer::ok(openai_reply(&verdict(risk, 0.9).to_string(), "stop"))
    });
    let cfg = config(dir.path(), "judges.yaml", &server.base_url(), "");
    let out = dir.path().join("live");
    let summary = run(&cfg, &trace, &out, &["-w", "2"]);
    assert_eq!(summary["balanced"], true);

    let decisions = read_jsonl(&out.join("decisions.jsonl"));
    let escalated: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["shadow_agent_escalated"] == true)
        .collect();
    assert!(escalated.len() >= RISKY.len(), "{} escalated", escalated.len());
    for d in &decisions {
        let asked = d["shadow_agent_escalated"] == true;
        let risky = d["tier"] == "escalate" || d["tier"] == "block";
        let analyses = d["shadow_agent_analyses"].as_array().unwrap();
        assert_eq!(asked, !analyses.is_empty(), "{d}");
        if !asked {
            assert!(!risky, "an escalated request was not judged: {d}");
        }
    }
    // The risky prompts: judged by the input and state agents, each a verdict.
    for i in 0..RISKY.len() {
        let d = decisions
            .iter()
            .find(|d| d["event_id"] == format!("risky-{i}"))
            .unwrap();
        let agents: Vec<&str> = d["shadow_agent_analyses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["agent_type"].as_str().unwrap())
            .collect();
        assert_eq!(agents, vec!["shadow_input", "shadow_state"], "{d}");
        for a in d["shadow_agent_analyses"].as_array().unwrap() {
            assert_eq!(a["fallback_used"], false, "{a}");
            assert_eq!(a["llm_provider"], "local");
            assert_eq!(a["tokens_used"], 340);
        }
        // A confident all-clear lowers the last one; the card number is a hard hit that no
        // verdict lowers.
        let expected = if i == 3 { "warn" } else { "block" };
        assert_eq!(d["tier"], expected, "{d}");
        let reason = d["escalation_reason"].as_str().unwrap();
        assert!(reason.contains("judges: shadow risk"), "{d}");
        assert_eq!(i == 1, reason.contains("not lowered over a hard hit"), "{d}");
    }
    // The judge saw the risky prompts with their personal data replaced, and no raw value.
    let seen = server.seen();
    assert!(!seen.is_empty());
    let texts: Vec<String> = seen.iter().map(|s| s.text()).collect();
    for placeholder in ["<EMAIL_ADDRESS>", "<CREDIT_CARD>", "<US_SSN>"] {
        assert!(texts.iter().any(|t| t.contains(placeholder)), "no {placeholder} sent");
    }
    let scanner = PiiScanner::new();
    for t in &texts {
        assert!(scanner.scan(t).is_empty(), "raw personal data sent to the judge: {t}");
        assert!(!t.contains("4111 1111 1111 1111") && !t.contains("dana.reyes"));
    }
    // No excerpt reaches an output.
    for file in ["decisions.jsonl", "anomalies.jsonl", "judgements.jsonl"] {
        let written = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(
            !written.contains("reveal your system prompt"),
            "{file} holds prompt text"
        );
        assert!(!written.contains("developer mode"), "{file} holds prompt text");
    }
    // Every analysis is in the journal, once.
    let journal = read_jsonl(&out.join("judgements.jsonl"));
    let analyses: usize = escalated
        .iter()
        .map(|d| d["shadow_agent_analyses"].as_array().unwrap().len())
        .sum();
    assert_eq!(journal.len(), analyses);
    let keys: BTreeSet<&str> = journal.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), journal.len());
    let judges = &summary["judges"];
    assert_eq!(judges["escalated"].as_u64().unwrap() as usize, escalated.len());
    assert_eq!(judges["breaker_state"], "closed");

    // A replay from the journal calls no one and decides the same, byte for byte.
    let calls_before = server.seen().len();
    let replayed = dir.path().join("replay");
    let journal_path = out.join("judgements.jsonl");
    run(
        &cfg,
        &trace,
        &replayed,
        &["-w", "1", "--judge-replay", journal_path.to_str().unwrap()],
    );
    assert_eq!(server.seen().len(), calls_before, "a replay made a call");
    assert_eq!(
        sorted_lines(&replayed.join("decisions.jsonl")),
        sorted_lines(&out.join("decisions.jsonl"))
    );
    assert_eq!(
        sorted_lines(&replayed.join("judgements.jsonl")),
        sorted_lines(&journal_path)
    );
}

#[test]
fn a_provider_that_is_down_falls_back_to_the_rules_or_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let trace = trace(dir.path());
    // Nothing listens here: every call is a connection error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("http://127.0.0.1:{port}/v1");
    let rules_out = dir.path().join("rules");
    let rules_cfg = dir.path().join("rules.yaml");
    std::fs::write(&rules_cfg, "detectors: []\n").unwrap();
    run(&rules_cfg, &trace, &rules_out, &[]);
    let rules = read_jsonl(&rules_out.join("decisions.jsonl"));

    let open_out = dir.path().join("open");
    let summary = run(&config(dir.path(), "open.yaml", &down, ""), &trace, &open_out, &[]);
    let open = read_jsonl(&open_out.join("decisions.jsonl"));
    let closed_out = dir.path().join("closed");
    run(
        &config(dir.path(), "closed.yaml", &down, "  fallback_to_rules: false\n"),
        &trace,
        &closed_out,
        &[],
    );
    let closed = read_jsonl(&closed_out.join("decisions.jsonl"));
    let by_id = |ds: &[Value]| -> std::collections::HashMap<String, Value> {
        ds.iter()
            .map(|d| (d["event_id"].as_str().unwrap().to_owned(), d["tier"].clone()))
            .collect()
    };
    let (rules, closed) = (by_id(&rules), by_id(&closed));
    let tier = |ds: &std::collections::HashMap<String, Value>, id: &str| ds[id].clone();
    let mut judged = 0;
    for d in &open {
        let id = d["event_id"].as_str().unwrap();
        assert_eq!(d["tier"], tier(&rules, id), "fail open keeps the rules' tier: {d}");
        if d["shadow_agent_escalated"] == true {
            judged += 1;
            for a in d["shadow_agent_analyses"].as_array().unwrap() {
                assert_eq!(a["fallback_used"], true);
                let reason = a["fallback_reason"].as_str().unwrap();
                assert!(reason == "provider_error" || reason == "circuit_open", "{a}");
            }
            assert_eq!(tier(&closed, id), "block", "fail closed blocks");
        } else {
            assert_eq!(tier(&closed, id), d["tier"]);
        }
    }
    assert!(judged >= RISKY.len());
    // Five failures opened the breaker; later requests fell back without a call.
    let judges = &summary["judges"];
    assert!(judges["breaker_transitions"][0].as_u64().unwrap() >= 1, "{judges}");
    let reasons: BTreeSet<&str> = judges["fallbacks_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert!(reasons.contains("circuit_open"), "{judges}");
}
