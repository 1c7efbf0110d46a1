//! The live judges: a [`JudgeService`] on its own tokio runtime. Requests enter a bounded
//! queue (full: `overload` at once); a dispatcher runs at most `max_in_flight` agent calls;
//! each call goes through the budget, the verdict cache (identical requests in flight share
//! one call), the circuit breaker and at most one retry inside the deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{ConstantBuilder, Retryable};
use hdrhistogram::Histogram;
use sentinel_dataflows::judge::{fallback_record, AgentIdentity, JudgeReply, JudgeService, Overloaded};
use sentinel_dataflows::model::{AgentType, FallbackReason, JudgeRequest, JudgementRecord, ShadowAgentAnalysis};
use sentinel_dataflows::operators::{Reading, ReadingKind};
use tokio::sync::{mpsc, Semaphore};

use crate::breaker::{BreakerReading, BreakerState, CircuitBreaker, Clock, SystemClock};
use crate::config::JudgeConfig;
use crate::prompts::{self, Prompt};
use crate::provider::{self, CallError, ReplyContent};
use crate::verdict::{self, Verdict};

/// The journal keeps this much of a raw reply.
const RAW_REPLY_BYTES: usize = 2048;
/// The wait before the one retry when the provider names none.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// A verdict as cached: what the call cost, so a hit reports the original tokens.
#[derive(Clone, Debug)]
struct Answer {
    verdict: Verdict,
    input_tokens: u32,
    output_tokens: u32,
    latency_ms: f64,
    raw: String,
}

/// What one agent call ended with, short of a verdict.
#[derive(Clone, Debug)]
struct NoVerdict {
    reason: FallbackReason,
    input_tokens: u32,
    output_tokens: u32,
    latency_ms: f64,
    raw: String,
}

impl NoVerdict {
    fn without_call(reason: FallbackReason) -> Self {
        NoVerdict {
            reason,
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0.0,
            raw: String::new(),
        }
    }
}

/// Counters of the live judges, for the run summary and metrics.
#[derive(Debug)]
pub struct ServiceStats {
    /// HTTP attempts made.
    pub calls: AtomicU64,
    /// Attempts answered 400, 401 or 403.
    pub config_errors: AtomicU64,
    /// Tokens sent.
    pub input_tokens: AtomicU64,
    /// Tokens received.
    pub output_tokens: AtomicU64,
    /// Latency of answered calls, µs.
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for ServiceStats {
    fn default() -> Self {
        ServiceStats {
            calls: AtomicU64::new(0),
            config_errors: AtomicU64::new(0),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            latency_us: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")),
        }
    }
}

impl ServiceStats {
    /// Call latency quantile `q`, ms (0 without calls).
    pub fn latency_ms(&self, q: f64) -> f64 {
        let h = self.latency_us.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    }
}

/// Tokens per tenant on the current UTC day.
#[derive(Debug, Default)]
struct Budget {
    limit: Option<u64>,
    used: Mutex<(u64, HashMap<String, u64>)>,
}

impl Budget {
    fn today() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400)
    }

    fn spent(&self, tenant: &str) -> bool {
        let Some(limit) = self.limit else { return false };
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let today = Self::today();
        if used.0 != today {
            *used = (today, HashMap::new());
        }
        used.1.get(tenant).is_some_and(|n| *n >= limit)
    }

    fn add(&self, tenant: &str, tokens: u64) {
        if self.limit.is_none() || tokens == 0 {
            return;
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used.1.entry(tenant.to_owned()).or_default() += tokens;
    }
}

struct Shared {
    cfg: JudgeConfig,
    client: reqwest::Client,
    breaker: CircuitBreaker,
    cache: Option<moka::future::Cache<String, Arc<Answer>>>,
    budget: Budget,
    stats: Arc<ServiceStats>,
}

struct Job {
    request: Arc<JudgeRequest>,
    reply: JudgeReply,
    deadline: Instant,
}

/// The live judges. Dropping it stops the runtime.
pub struct LiveJudges {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Job>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for LiveJudges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveJudges")
            .field("provider", &self.shared.cfg.provider)
            .field("model", &self.shared.cfg.model)
            .finish_non_exhaustive()
    }
}

impl LiveJudges {
    /// Starts the runtime and the dispatcher.
    pub fn start(cfg: JudgeConfig) -> Result<LiveJudges, String> {
        Self::start_with_clock(cfg, Arc::new(SystemClock))
    }

    /// [`LiveJudges::start`] with the breaker on `clock` (tests).
    pub fn start_with_clock(cfg: JudgeConfig, clock: Arc<dyn Clock>) -> Result<LiveJudges, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads.max(1))
            .thread_name("sentinel-judge")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the judges' runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.max_in_flight.max(1))
            .build()
            .map_err(|e| format!("cannot build the judges' HTTP client: {e}"))?;
        let cache = cfg.cache_ttl.map(|ttl| {
            moka::future::Cache::builder()
                .max_capacity(cfg.cache_capacity)
                .time_to_live(ttl)
                .build()
        });
        let shared = Arc::new(Shared {
            breaker: CircuitBreaker::new(cfg.breaker, clock),
            budget: Budget {
                limit: cfg.tenant_daily_tokens,
                used: Mutex::default(),
            },
            client,
            cache,
            stats: Arc::new(ServiceStats::default()),
            cfg,
        });
        let (queue, rx) = mpsc::channel(shared.cfg.max_queued.max(1));
        runtime.spawn(dispatch(Arc::clone(&shared), rx));
        Ok(LiveJudges {
            shared,
            queue,
            runtime: Some(runtime),
        })
    }

    /// The counters.
    pub fn stats(&self) -> Arc<ServiceStats> {
        Arc::clone(&self.shared.stats)
    }

    /// The breaker's state and transitions.
    pub fn breaker(&self) -> BreakerReading {
        self.shared.breaker.reading()
    }

    /// The figures `/metrics` shows: the breaker's state (1 for the state it is in) and
    /// transitions, calls made, and configuration errors.
    pub fn readings(&self) -> Vec<Reading> {
        let breaker = self.breaker();
        let stats = &self.shared.stats;
        let states = [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen];
        let mut out: Vec<Reading> = states
            .iter()
            .map(|state| Reading {
                name: "sentinel_judge_breaker_state",
                help: "The judges' circuit breaker: 1 for the state it is in.",
                kind: ReadingKind::Gauge,
                labels: vec![("state", state.as_str().to_owned())],
                value: f64::from(u8::from(*state == breaker.state)),
            })
            .collect();
        for (to, n) in [
            (BreakerState::Open, breaker.opened),
            (BreakerState::HalfOpen, breaker.half_opened),
            (BreakerState::Closed, breaker.closed),
        ] {
            out.push(Reading {
                name: "sentinel_judge_breaker_transitions",
                help: "Times the judges' circuit breaker moved, by the state it moved to.",
                kind: ReadingKind::Counter,
                labels: vec![("to", to.as_str().to_owned())],
                value: n as f64,
            });
        }
        for (name, help, value) in [
            (
                "sentinel_judge_calls",
                "HTTP attempts made to the judge provider.",
                stats.calls.load(Relaxed),
            ),
            (
                "sentinel_judge_config_errors",
                "Judge calls answered 400, 401 or 403.",
                stats.config_errors.load(Relaxed),
            ),
        ] {
            out.push(Reading {
                name,
                help,
                kind: ReadingKind::Counter,
                labels: Vec::new(),
                value: value as f64,
            });
        }
        out
    }

    /// Spend so far at the configured prices.
    pub fn cost(&self) -> f64 {
        let s = &self.shared.stats;
        let cfg = &self.shared.cfg;
        (s.input_tokens.load(Relaxed) as f64 * cfg.input_price_per_million
            + s.output_tokens.load(Relaxed) as f64 * cfg.output_price_per_million)
            / 1e6
    }
}

impl Drop for LiveJudges {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl JudgeService for LiveJudges {
    fn submit(&self, request: JudgeRequest, reply: JudgeReply) -> Result<(), Overloaded> {
        let job = Job {
            request: Arc::new(request),
            reply,
            deadline: Instant::now() + self.shared.cfg.timeout,
        };
        self.queue.try_send(job).map_err(|_| Overloaded)
    }

    fn identity(&self, agent: AgentType) -> AgentIdentity {
        identity(&self.shared.cfg, agent)
    }
}

fn identity(cfg: &JudgeConfig, agent: AgentType) -> AgentIdentity {
    AgentIdentity {
        provider: cfg.provider.as_str().to_owned(),
        model: cfg.model.clone(),
        prompt_version: prompts::version(agent).to_owned(),
    }
}

async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(shared.cfg.max_in_flight.max(1)));
    while let Some(job) = rx.recv().await {
        for agent in job.request.agents.clone() {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let shared = Arc::clone(&shared);
            let request = Arc::clone(&job.request);
            let reply = job.reply.clone();
            let deadline = job.deadline;
            tokio::spawn(async move {
                // Past its deadline the operator has decided already: no call.
                if Instant::now() < deadline {
                    let record = judge_one(&shared, agent, &request, deadline).await;
                    reply.send(record);
                }
                drop(permit);
            });
        }
    }
}

async fn judge_one(shared: &Shared, agent: AgentType, request: &JudgeRequest, deadline: Instant) -> JudgementRecord {
    let cfg = &shared.cfg;
    let who = identity(cfg, agent);
    if shared.budget.spent(&request.tenant_id) {
        return fallback_record(agent, request, FallbackReason::Budget, &who);
    }
    let prompt = prompts::render(agent, request, &cfg.model);
    let ran = std::sync::atomic::AtomicBool::new(false);
    let outcome: Result<Arc<Answer>, NoVerdict> = match &shared.cache {
        Some(cache) => cache
            .try_get_with(prompt.request_hash.clone(), async {
                ran.store(true, Relaxed);
                ask(shared, &prompt, deadline).await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone()),
        None => {
            ran.store(true, Relaxed);
            ask(shared, &prompt, deadline).await.map(Arc::new)
        }
    };
    let cache_hit = !ran.load(Relaxed);
    let mut record = fallback_record(agent, request, FallbackReason::ParseError, &who);
    record.request_hash.clone_from(&prompt.request_hash);
    match outcome {
        Ok(answer) => {
            if !cache_hit {
                shared.budget.add(
                    &request.tenant_id,
                    u64::from(answer.input_tokens + answer.output_tokens),
                );
            }
            record.raw_reply = answer.raw.clone();
            record.input_tokens = answer.input_tokens;
            record.output_tokens = answer.output_tokens;
            let v = &answer.verdict;
            record.analysis = ShadowAgentAnalysis {
                agent_type: agent,
                risk_score: v.risk_score,
                risk_level: request.thresholds.level(v.risk_score).as_str().to_owned(),
                confidence: v.confidence,
                threats_detected: v.threats_detected.clone(),
                reasoning: v.reasoning.clone(),
                recommendations: v.recommendations.clone(),
                llm_provider: who.provider,
                llm_model: who.model,
                tokens_used: answer.input_tokens + answer.output_tokens,
                latency_ms: answer.latency_ms,
                fallback_used: false,
                fallback_reason: None,
                cache_hit,
                prompt_version: who.prompt_version,
            };
        }
        Err(no) => {
            if !cache_hit {
                shared
                    .budget
                    .add(&request.tenant_id, u64::from(no.input_tokens + no.output_tokens));
            }
            record.raw_reply = no.raw;
            record.input_tokens = no.input_tokens;
            record.output_tokens = no.output_tokens;
            let a = &mut record.analysis;
            *a = fallback_record(agent, request, no.reason, &who).analysis;
            a.tokens_used = no.input_tokens + no.output_tokens;
            a.latency_ms = no.latency_ms;
            a.cache_hit = cache_hit;
        }
    }
    record
}

fn clip_raw(raw: &str) -> String {
    let mut end = raw.len().min(RAW_REPLY_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_owned()
}

/// One agent's call, with the breaker and at most one retry inside the deadline.
async fn ask(shared: &Shared, prompt: &Prompt, deadline: Instant) -> Result<Answer, NoVerdict> {
    let cfg = &shared.cfg;
    let stats = &shared.stats;
    let started = Instant::now();
    // Waited in the queue for most of its deadline: no call (its tokens would likely be spent
    // on an answer that comes too late), and no mark against the provider.
    if deadline.saturating_duration_since(started) < cfg.timeout / 2 {
        return Err(NoVerdict::without_call(FallbackReason::Timeout));
    }
    let attempt = || async {
        if !shared.breaker.allow() {
            return Err(AttemptError::Open);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AttemptError::Call(CallError::Timeout));
        }
        stats.calls.fetch_add(1, Relaxed);
        match provider::call(&shared.client, cfg, prompt, left).await {
            Ok(reply) => {
                shared.breaker.success();
                Ok(reply)
            }
            Err(e) if e.is_transient() => {
                // A timeout counts against the provider only if the call had a fair budget.
                if !(e == CallError::Timeout && left < cfg.timeout / 2) {
                    shared.breaker.failure(e.retry_after());
                }
                Err(AttemptError::Call(e))
            }
            Err(e) => {
                shared.breaker.success();
                Err(AttemptError::Call(e))
            }
        }
    };
    let result = attempt
        .retry(ConstantBuilder::default().with_delay(RETRY_DELAY).with_max_times(1))
        .when(|e| matches!(e, AttemptError::Call(c) if c.is_transient()))
        .adjust(|e, delay| {
            let wait = match e {
                AttemptError::Call(c) => c.retry_after().or(delay)?,
                AttemptError::Open => return None,
            };
            // Retry only if the wait leaves time for the call.
            (Instant::now() + wait < deadline).then_some(wait)
        })
        .await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let reply = match result {
        Ok(reply) => reply,
        Err(AttemptError::Open) => return Err(NoVerdict::without_call(FallbackReason::CircuitOpen)),
        Err(AttemptError::Call(e)) => {
            let reason = match &e {
                CallError::Timeout => FallbackReason::Timeout,
                CallError::Status { code, body, .. } if !e.is_transient() => {
                    stats.config_errors.fetch_add(1, Relaxed);
                    tracing::warn!(status = code, body = %body, "judge call refused: check the provider, model and key");
                    FallbackReason::ConfigError
                }
                CallError::Malformed(why) => {
                    tracing::warn!(error = %why, "judge reply is not the provider's shape");
                    FallbackReason::ParseError
                }
                _ => FallbackReason::ProviderError,
            };
            let mut no = NoVerdict::without_call(reason);
            no.latency_ms = latency_ms;
            return Err(no);
        }
    };
    stats.input_tokens.fetch_add(u64::from(reply.input_tokens), Relaxed);
    stats.output_tokens.fetch_add(u64::from(reply.output_tokens), Relaxed);
    if let Ok(mut h) = stats.latency_us.lock() {
        let _ = h.record((latency_ms * 1000.0).max(1.0) as u64);
    }
    let parsed = match reply.content {
        ReplyContent::Structured(v) => verdict::from_value(v).map_err(|_| FallbackReason::ParseError),
        ReplyContent::Text(t) => verdict::from_text(&t).map_err(|_| FallbackReason::ParseError),
        ReplyContent::Refusal => Err(FallbackReason::Refusal),
        ReplyContent::Truncated => Err(FallbackReason::Truncated),
    };
    let raw = clip_raw(&reply.raw);
    match parsed {
        Ok(verdict) => Ok(Answer {
            verdict,
            input_tokens: reply.input_tokens,
            output_tokens: reply.output_tokens,
            latency_ms,
            raw,
        }),
        Err(reason) => Err(NoVerdict {
            reason,
            input_tokens: reply.input_tokens,
            output_tokens: reply.output_tokens,
            latency_ms,
            raw,
        }),
    }
}

enum AttemptError {
    Open,
    Call(CallError),
}
