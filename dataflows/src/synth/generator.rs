//! The trace generator. Base traffic and injected anomalies draw from separate random streams, so
//! a trace with and without injections is the same traffic apart from the injected cases.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use super::catalog::{AppProfile, ModelProfile, APPS, INJECTIONS, MODELS, PII_SNIPPETS, TOOLS, WORDS};
use super::labels::{Label, LabelCategory};
use super::rng::{cdf, Rng};
use crate::time::format_rfc3339_ms;

const MINUTE: u64 = 60_000;

/// One call's arrival gap and token counts, e.g. from a recorded production trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArrivalSample {
    /// Time since the previous call, ms.
    pub gap_ms: f64,
    /// Input tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub completion_tokens: u32,
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceConfig {
    /// Events to emit in total.
    pub events: u64,
    /// Seed; the same seed gives the same trace.
    pub seed: u64,
    /// Event time of the first call, epoch ms.
    pub start_ms: u64,
    /// Mean model calls per second (before the diurnal swing).
    pub calls_per_sec: f64,
    /// Bytes of prompt text on every `llm.request` (0: numbers only, apart from injected content cases).
    pub prompt_bytes: usize,
    /// Bytes of response text on every `llm.response`; `None` means a quarter of `prompt_bytes`.
    pub response_bytes: Option<usize>,
    /// Inject labeled anomalies.
    pub inject: bool,
    /// Recorded arrivals and token counts to replay instead of the synthetic ones (cycled).
    pub arrivals: Option<Vec<ArrivalSample>>,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            events: 320_000,
            seed: 42,
            start_ms: 1_717_200_000_000, // 2024-06-01T00:00:00Z
            calls_per_sec: 15.0,
            prompt_bytes: 0,
            response_bytes: None,
            inject: true,
            arrivals: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Effect {
    CostSpike { app: usize },
    TokenSpike { app: usize },
    LatencyRegression { model: usize },
    ErrorBurst { app: usize },
}

struct Injection {
    effect: Effect,
    start: u64,
    end: u64,
}

/// A call to emit, with every parameter drawn.
struct Call {
    t: u64,
    app: usize,
    tenant: &'static str,
    model: usize,
    user: String,
    prompt_tokens: u32,
    completion_tokens: u32,
    latency_ms: f64,
    error: bool,
    prompt: Option<String>,
    response: Option<String>,
    tools: Vec<(u64, &'static str, String)>,
    id: String,
}

/// Generates a time-ordered trace of JSON events and its labels.
///
/// ```
/// use sentinel_dataflows::synth::{TraceConfig, TraceGenerator};
/// let cfg = TraceConfig { events: 1000, ..TraceConfig::default() };
/// let a: Vec<String> = TraceGenerator::new(cfg.clone()).map(|(_, json)| json).collect();
/// let b: Vec<String> = TraceGenerator::new(cfg).map(|(_, json)| json).collect();
/// assert_eq!(a.len(), 1000);
/// assert_eq!(a, b);
/// ```
pub struct TraceGenerator {
    cfg: TraceConfig,
    base: Rng,
    inject_rng: Rng,
    app_cdf: Vec<f64>,
    model_cdfs: Vec<Vec<f64>>,
    user_cdfs: Vec<Vec<f64>>,
    next_call_t: f64,
    calls: u64,
    arrival_index: usize,
    pending: BinaryHeap<Reverse<(u64, u64, String)>>,
    seq: u64,
    emitted: u64,
    injections: Vec<Injection>,
    extra_calls: Vec<Call>,
    extra_next: usize,
    labels: Vec<Label>,
}

impl TraceGenerator {
    /// A generator for `cfg`.
    pub fn new(cfg: TraceConfig) -> Self {
        let app_cdf = cdf(APPS.iter().map(|a| a.share));
        let model_cdfs = APPS.iter().map(|a| cdf(a.models.iter().map(|m| m.1))).collect();
        let user_cdfs = APPS
            .iter()
            .map(|a| cdf((1..=a.users).map(|k| 1.0 / (k as f64).powf(1.1))))
            .collect();
        let mut g = TraceGenerator {
            base: Rng::new(cfg.seed),
            inject_rng: Rng::new(cfg.seed.wrapping_add(0xA11CE)),
            next_call_t: cfg.start_ms as f64,
            cfg,
            app_cdf,
            model_cdfs,
            user_cdfs,
            calls: 0,
            arrival_index: 0,
            pending: BinaryHeap::new(),
            seq: 0,
            emitted: 0,
            injections: Vec::new(),
            extra_calls: Vec::new(),
            extra_next: 0,
            labels: Vec::new(),
        };
        if g.cfg.inject {
            g.plan_injections();
        }
        g
    }

    /// Ground truth for the injected cases (empty without injection).
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Approximate event-time span of the trace, ms.
    pub fn duration_ms(&self) -> u64 {
        let per_call = match &self.cfg.arrivals {
            Some(a) if !a.is_empty() => a.iter().map(|s| s.gap_ms).sum::<f64>() / a.len() as f64,
            _ => 1000.0 / self.cfg.calls_per_sec,
        };
        (self.cfg.events as f64 / 2.08 * per_call) as u64
    }

    fn rate_at(&self, t: f64) -> f64 {
        // Diurnal swing: quietest at 04:00 UTC, busiest at 16:00.
        let day = (t - self.cfg.start_ms as f64) / 86_400_000.0;
        self.cfg.calls_per_sec * (1.0 + 0.4 * (std::f64::consts::TAU * (day - 0.42)).sin())
    }

    fn plan_injections(&mut self) {
        let start = self.cfg.start_ms;
        let duration = self.duration_ms();
        let warmup = (duration as f64 * 0.4) as u64;
        let round_len = (6 * 3_600_000).min(duration.saturating_sub(warmup)).max(60 * MINUTE);
        let rounds = ((duration.saturating_sub(warmup)) / round_len).max(1);
        let slot = round_len / 7;
        let mut plans = Vec::new();
        for round in 0..rounds {
            let base = start + warmup + round * round_len;
            let at = |k: u64| base + k * slot + slot / 5;
            let r = &mut self.inject_rng;
            let pick_app = |r: &mut Rng| r.below(4) as usize; // the four busiest applications
            let cost_app = pick_app(r);
            let token_app = (cost_app + 1 + r.below(3) as usize) % 4;
            let error_app = pick_app(r);
            let model = APPS[pick_app(r)].models[0].0;
            let flood_user = format!("{}-u{}", APPS[0].name, 1 + r.below(15));
            let switch_user = format!("{}-u{}", APPS[3].name, 100 + r.below(500));
            plans.push((round, Effect::CostSpike { app: cost_app }, at(0), 4 * MINUTE));
            plans.push((round, Effect::TokenSpike { app: token_app }, at(1), 4 * MINUTE));
            plans.push((round, Effect::LatencyRegression { model }, at(2), 10 * MINUTE));
            plans.push((round, Effect::ErrorBurst { app: error_app }, at(3), 8 * MINUTE));
            self.extra_call_plans(round, at(4), &flood_user, &switch_user, at(5), base, round_len);
        }
        for (round, effect, start, len) in plans {
            let (kind, entity_type, entity, metrics): (&str, &str, &str, &[&str]) = match effect {
                Effect::CostSpike { app } => (
                    "cost_spike",
                    "application",
                    APPS[app].name,
                    &["cost_per_minute", "cost_per_hour"],
                ),
                Effect::TokenSpike { app } => (
                    "token_rate_spike",
                    "application",
                    APPS[app].name,
                    &["tokens_per_minute"],
                ),
                Effect::LatencyRegression { model } => (
                    "latency_regression",
                    "model",
                    MODELS[model].name,
                    &["latency_p95", "latency_p99"],
                ),
                Effect::ErrorBurst { app } => ("error_burst", "application", APPS[app].name, &["error_rate"]),
            };
            self.labels.push(Label {
                id: format!("r{round}-{kind}"),
                kind: kind.into(),
                category: LabelCategory::Statistical,
                start_ms: start,
                end_ms: start + len,
                entity_type: entity_type.into(),
                entity_id: entity.into(),
                metrics: metrics.iter().map(|m| m.to_string()).collect(),
                event_ids: Vec::new(),
            });
            self.injections.push(Injection {
                effect,
                start,
                end: start + len,
            });
        }
        self.extra_calls.sort_by_key(|c| c.t);
        self.labels
            .sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
    }

    /// Calls that exist only in the injected trace: a request flood, model switching, tool loops
    /// and dangerous content.
    #[allow(clippy::too_many_arguments)]
    fn extra_call_plans(
        &mut self,
        round: u64,
        flood_at: u64,
        flood_user: &str,
        switch_user: &str,
        switch_at: u64,
        base: u64,
        span: u64,
    ) {
        let mut extra = Vec::new();
        // Request flood: 240 calls a minute for three minutes from one existing user.
        let flood_len = 3 * MINUTE;
        for i in 0..720u64 {
            let t = flood_at + i * flood_len / 720 + self.inject_rng.below(200);
            let mut c = self.draw_call_with(t, 0, false);
            c.user = flood_user.to_owned();
            c.id = format!("r{round}-flood-{i}");
            extra.push(c);
        }
        self.label(
            round,
            "request_flood",
            LabelCategory::Statistical,
            flood_at,
            flood_at + flood_len,
            "user",
            flood_user,
            &["requests_per_minute"],
            Vec::new(),
        );
        // Model switching: one user cycles through every model within three minutes.
        let mut ids = Vec::new();
        for i in 0..36u64 {
            let t = switch_at + i * 5_000;
            let mut c = self.draw_call_with(t, 3, false);
            c.user = switch_user.to_owned();
            c.model = (i as usize) % MODELS.len();
            c.id = format!("r{round}-switch-{i}");
            ids.push(format!("{}-r", c.id));
            extra.push(c);
        }
        self.label(
            round,
            "model_switching",
            LabelCategory::Behavioral,
            switch_at,
            switch_at + 36 * 5_000,
            "user",
            switch_user,
            &[],
            ids,
        );
        // An agent stuck in a loop: the same tool with the same arguments, twelve times.
        let loop_at = base + span * 6 / 7;
        let mut c = self.draw_call_with(loop_at, 5, true);
        c.id = format!("r{round}-toolloop");
        c.tools = (0..12)
            .map(|k| {
                (
                    loop_at + 500 + k * 1_500,
                    "web_search",
                    "{\"query\":\"status of ticket 4411\"}".to_owned(),
                )
            })
            .collect();
        let session = session_of(&c.user, c.t);
        let ids = (0..12).map(|k| format!("{}-t{k}", c.id)).collect();
        self.label(
            round,
            "tool_loop",
            LabelCategory::Behavioral,
            loop_at,
            loop_at + 20_000,
            "session",
            &session,
            &[],
            ids,
        );
        extra.push(c);
        // Content cases spread over the round.
        for i in 0..6u64 {
            let t = base + span * (2 * i + 1) / 13 + self.inject_rng.below(MINUTE);
            let app = self.inject_rng.below(APPS.len() as u64) as usize;
            let mut c = self.draw_call_with(t, app, false);
            c.id = format!("r{round}-inject-{i}");
            c.prompt = Some(INJECTIONS[(round as usize + i as usize) % INJECTIONS.len()].to_owned());
            self.label_event(round, "prompt_injection", t, format!("{}-q", c.id));
            extra.push(c);
            let t = t + 7 * MINUTE;
            let mut c = self.draw_call_with(t, app, false);
            let snippet = PII_SNIPPETS[(round as usize + i as usize) % PII_SNIPPETS.len()];
            if i % 2 == 0 {
                c.id = format!("r{round}-pii-prompt-{i}");
                c.prompt = Some(format!("Please update my account, {snippet}, thanks."));
                self.label_event(round, "pii_prompt", t, format!("{}-q", c.id));
            } else {
                c.id = format!("r{round}-pii-response-{i}");
                c.prompt = Some("What contact details do you have on file for me?".to_owned());
                c.response = Some(format!("Sure. On file: {snippet}."));
                self.label_event(round, "pii_response", t, format!("{}-r", c.id));
            }
            extra.push(c);
        }
        self.extra_calls.extend(extra);
    }

    /// Labels one event carrying a content case.
    fn label_event(&mut self, round: u64, kind: &str, t: u64, event_id: String) {
        self.label(
            round,
            kind,
            LabelCategory::Content,
            t,
            t + 1,
            "event",
            &event_id,
            &[],
            vec![event_id.clone()],
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn label(
        &mut self,
        round: u64,
        kind: &str,
        category: LabelCategory,
        start: u64,
        end: u64,
        entity_type: &str,
        entity: &str,
        metrics: &[&str],
        event_ids: Vec<String>,
    ) {
        let n = self
            .labels
            .iter()
            .filter(|l| l.kind == kind && l.id.starts_with(&format!("r{round}-")))
            .count();
        let suffix = if n == 0 { String::new() } else { format!("-{n}") };
        self.labels.push(Label {
            id: format!("r{round}-{kind}{suffix}"),
            kind: kind.into(),
            category,
            start_ms: start,
            end_ms: end,
            entity_type: entity_type.into(),
            entity_id: entity.into(),
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
            event_ids,
        });
    }

    /// Draws an injected call's parameters from the injection stream.
    fn draw_call_with(&mut self, t: u64, app: usize, agent: bool) -> Call {
        let mut rng = Rng::new(self.inject_rng.next_u64());
        let mut c = draw_call(
            &mut rng,
            t,
            app,
            &self.model_cdfs[app],
            &self.user_cdfs[app],
            None,
            self.text_sizes(),
        );
        if !agent {
            c.tools.clear();
        }
        c
    }

    fn text_sizes(&self) -> (usize, usize) {
        (
            self.cfg.prompt_bytes,
            self.cfg.response_bytes.unwrap_or(self.cfg.prompt_bytes / 4),
        )
    }

    fn next_base_call(&mut self) -> Call {
        let t = self.next_call_t;
        let sample = self
            .cfg
            .arrivals
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(|a| a[self.arrival_index % a.len()]);
        self.arrival_index += 1;
        let gap_ms = match sample {
            Some(s) => s.gap_ms,
            None => self.base.exp(self.rate_at(t)) * 1000.0,
        };
        self.next_call_t += gap_ms.max(0.0);
        let app = self.base.pick(&self.app_cdf);
        let text_sizes = self.text_sizes();
        let mut c = draw_call(
            &mut self.base,
            t as u64,
            app,
            &self.model_cdfs[app],
            &self.user_cdfs[app],
            sample,
            text_sizes,
        );
        c.id = format!("c{:x}", self.calls);
        self.calls += 1;
        for inj in self.injections.iter().filter(|i| (i.start..i.end).contains(&c.t)) {
            match inj.effect {
                Effect::TokenSpike { app } if app == c.app => {
                    c.completion_tokens = c.completion_tokens.saturating_mul(6)
                }
                Effect::LatencyRegression { model } if model == c.model => c.latency_ms *= 4.0,
                Effect::ErrorBurst { app } if app == c.app => c.error |= self.inject_rng.chance(0.4),
                _ => {}
            }
        }
        c
    }

    fn cost_multiplier(&self, c: &Call) -> f64 {
        let spiking = self
            .injections
            .iter()
            .any(|i| matches!(i.effect, Effect::CostSpike { app } if app == c.app) && (i.start..i.end).contains(&c.t));
        if spiking {
            8.0
        } else {
            1.0
        }
    }

    fn schedule(&mut self, c: Call) {
        let multiplier = self.cost_multiplier(&c);
        for (ts, json) in render(&c, multiplier) {
            self.seq += 1;
            self.pending.push(Reverse((ts, self.seq, json)));
        }
    }
}

impl Iterator for TraceGenerator {
    /// `(event time, JSON document)`, in event-time order.
    type Item = (u64, String);

    fn next(&mut self) -> Option<(u64, String)> {
        if self.emitted >= self.cfg.events {
            return None;
        }
        loop {
            let horizon = self.next_call_t as u64;
            if let Some(Reverse((ts, _, _))) = self.pending.peek() {
                if *ts <= horizon {
                    let Reverse((ts, _, json)) = self.pending.pop()?;
                    self.emitted += 1;
                    return Some((ts, json));
                }
            }
            let call = self.next_base_call();
            // Extra calls up to the new horizon, so nothing earlier can be scheduled after a pop.
            let horizon = self.next_call_t as u64;
            while self.extra_next < self.extra_calls.len() && self.extra_calls[self.extra_next].t <= horizon {
                let extra = std::mem::replace(&mut self.extra_calls[self.extra_next], placeholder());
                self.extra_next += 1;
                self.schedule(extra);
            }
            self.schedule(call);
        }
    }
}

fn placeholder() -> Call {
    Call {
        t: 0,
        app: 0,
        tenant: "",
        model: 0,
        user: String::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 0.0,
        error: false,
        prompt: None,
        response: None,
        tools: Vec::new(),
        id: String::new(),
    }
}

fn session_of(user: &str, t: u64) -> String {
    format!("{user}-s{}", t / (30 * MINUTE))
}

fn draw_call(
    rng: &mut Rng,
    t: u64,
    app: usize,
    model_cdf: &[f64],
    user_cdf: &[f64],
    sample: Option<ArrivalSample>,
    (prompt_bytes, response_bytes): (usize, usize),
) -> Call {
    let profile: &AppProfile = &APPS[app];
    let model = profile.models[rng.pick(model_cdf)].0;
    let m: &ModelProfile = &MODELS[model];
    let tenant = profile.tenants[rng.below(profile.tenants.len() as u64) as usize];
    let user = format!("{}-u{}", profile.name, rng.pick(user_cdf) + 1);
    let (prompt_tokens, completion_tokens) = match sample {
        Some(s) => (s.prompt_tokens, s.completion_tokens),
        None => (
            rng.lognormal(profile.prompt_tokens, 0.8).clamp(1.0, 120_000.0) as u32,
            rng.lognormal(profile.completion_tokens, 0.7).clamp(1.0, 16_000.0) as u32,
        ),
    };
    let latency_ms = (m.base_latency_ms + m.per_token_ms * f64::from(completion_tokens)) * rng.lognormal(1.0, 0.25);
    let error = rng.chance(m.error_rate);
    let prompt = (prompt_bytes > 0).then(|| text(rng, prompt_bytes));
    let response = (response_bytes > 0).then(|| text(rng, response_bytes));
    let mut tools = Vec::new();
    if profile.agent && rng.chance(0.5) {
        for k in 0..1 + rng.below(3) {
            let tool = TOOLS[rng.below(TOOLS.len() as u64) as usize];
            tools.push((
                t + latency_ms as u64 + 200 * (k + 1),
                tool,
                format!("{{\"q\":\"item {}\"}}", rng.below(1000)),
            ));
        }
    }
    Call {
        t,
        app,
        tenant,
        model,
        user,
        prompt_tokens,
        completion_tokens,
        latency_ms,
        error,
        prompt,
        response,
        tools,
        id: String::new(),
    }
}

fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s.truncate(bytes);
    s
}

fn json_str(out: &mut String, s: &str) {
    // serde_json's escaping, without an intermediate allocation per field.
    let _ = write!(out, "{}", serde_json::Value::String(s.to_owned()));
}

fn render(c: &Call, cost_multiplier: f64) -> Vec<(u64, String)> {
    let app = &APPS[c.app];
    let m = &MODELS[c.model];
    let session = session_of(&c.user, c.t);
    let host = format!("{}-{}", app.name, c.user.len() % 4);
    let head = |out: &mut String, id: &str, ts: u64, kind: &str| {
        let _ = write!(
            out,
            "{{\"event_id\":\"{id}\",\"timestamp\":\"{}\",\"event_type\":\"{kind}\",\"application_id\":\"{}\",\"tenant_id\":\"{}\",\"source\":{{\"service\":\"{}\",\"host\":\"{host}\"}},",
            format_rfc3339_ms(ts),
            app.name,
            c.tenant,
            app.name
        );
    };
    let tail = |out: &mut String| {
        let _ = write!(
            out,
            ",\"metadata\":{{\"user_id\":\"{}\",\"session_id\":\"{session}\"}}}}",
            c.user
        );
    };
    let mut events = Vec::with_capacity(2 + c.tools.len());
    let mut req = String::with_capacity(320 + c.prompt.as_ref().map_or(0, |p| p.len()));
    head(&mut req, &format!("{}-q", c.id), c.t, "llm.request");
    let _ = write!(req, "\"data\":{{\"model\":\"{}\"", m.name);
    if let Some(p) = &c.prompt {
        req.push_str(",\"prompt\":");
        json_str(&mut req, p);
    }
    let _ = write!(req, ",\"prompt_tokens\":{}}}", c.prompt_tokens);
    tail(&mut req);
    events.push((c.t, req));

    let done = c.t + c.latency_ms.max(1.0) as u64;
    let mut res = String::with_capacity(400 + c.response.as_ref().map_or(0, |p| p.len()));
    if c.error {
        head(&mut res, &format!("{}-r", c.id), done, "llm.error");
        let _ = write!(
            res,
            "\"data\":{{\"model\":\"{}\",\"prompt_tokens\":{},\"completion_tokens\":0,\"latency_ms\":{:.1},\"cost\":0.0,\"status\":\"error\",\"finish_reason\":\"error\"}}",
            m.name, c.prompt_tokens, c.latency_ms
        );
    } else {
        head(&mut res, &format!("{}-r", c.id), done, "llm.response");
        let cost = (f64::from(c.prompt_tokens) * m.price_in + f64::from(c.completion_tokens) * m.price_out) / 1000.0
            * cost_multiplier;
        let _ = write!(res, "\"data\":{{\"model\":\"{}\"", m.name);
        if let Some(r) = &c.response {
            res.push_str(",\"response\":");
            json_str(&mut res, r);
        }
        let _ = write!(
            res,
            ",\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},\"latency_ms\":{:.1},\"cost\":{:.6},\"status\":\"success\",\"finish_reason\":\"stop\"}}",
            c.prompt_tokens,
            c.completion_tokens,
            c.prompt_tokens + c.completion_tokens,
            c.latency_ms,
            cost
        );
    }
    tail(&mut res);
    events.push((done, res));

    for (k, (ts, tool, args)) in c.tools.iter().enumerate() {
        let mut ev = String::with_capacity(360);
        head(&mut ev, &format!("{}-t{k}", c.id), *ts, "agent.tool_call");
        let _ = write!(
            ev,
            "\"data\":{{\"model\":\"{}\",\"tool\":{{\"name\":\"{tool}\",\"args\":{args}}}}}",
            m.name
        );
        tail(&mut ev);
        events.push((*ts, ev));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{decode_event, DecodeLimits};

    #[test]
    fn every_event_decodes_and_time_never_goes_back() {
        let cfg = TraceConfig {
            events: 20_000,
            prompt_bytes: 200,
            ..TraceConfig::default()
        };
        let mut last = 0;
        for (ts, json) in TraceGenerator::new(cfg) {
            assert!(ts >= last);
            last = ts;
            let ev =
                decode_event(json.as_bytes(), &DecodeLimits::default()).unwrap_or_else(|e| panic!("{e:?}: {json}"));
            assert_eq!(ev.metric.timestamp_ms, ts);
        }
    }

    #[test]
    fn injection_changes_only_the_injected_cases() {
        let cfg = TraceConfig {
            events: 200_000,
            ..TraceConfig::default()
        };
        let g = TraceGenerator::new(cfg.clone());
        let labels = g.labels().to_vec();
        assert!(labels.iter().any(|l| l.kind == "cost_spike"));
        assert!(labels.iter().any(|l| l.kind == "pii_response"));
        let clean = TraceGenerator::new(TraceConfig {
            inject: false,
            ..cfg.clone()
        });
        assert!(clean.labels().is_empty());
        let first_label = labels.iter().map(|l| l.start_ms).min().unwrap();
        let a: Vec<_> = TraceGenerator::new(cfg.clone())
            .take_while(|e| e.0 < first_label)
            .collect();
        let b: Vec<_> = clean.take_while(|e| e.0 < first_label).collect();
        assert_eq!(a, b, "traffic before the first injection must be identical");
    }
}
