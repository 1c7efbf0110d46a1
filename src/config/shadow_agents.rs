//! The `shadow_agents:` section: the seed's ShadowAgentEscalationConfig keys, plus the
//! endpoint, concurrency, prices and budget a deployment needs.

use std::time::Duration;

use sentinel_dataflows::detect::{AgentSwitches, Decider};
use sentinel_dataflows::guard::{Profile, RiskThresholds};
use sentinel_judges::{BreakerConfig, JudgeConfig, ProviderKind};
use serde::Deserialize;

/// `shadow_agents:`. Every key is optional; a `profile` sets the seed's values for it first.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowAgentsConfig {
    /// Ask the judges at all (off by default).
    #[serde(default)]
    pub enabled: bool,
    /// `high_security`, `balanced` or `performance`.
    pub profile: Option<String>,
    /// `anthropic` (default), `openai` or `local`.
    pub llm_provider: Option<String>,
    /// Model name.
    pub llm_model: Option<String>,
    /// API base, ending in `/v1` (proxies, local servers, tests).
    pub llm_base_url: Option<String>,
    /// API key; default `ANTHROPIC_API_KEY` or `OPENAI_API_KEY` from the environment.
    pub api_key: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Most tokens per reply.
    pub max_tokens: Option<u32>,
    /// The longest an escalated request waits for its verdicts.
    pub timeout_ms: Option<u64>,
    /// Warn at or above.
    pub low_risk_threshold: Option<f32>,
    /// Escalate to the judges at or above.
    pub medium_risk_threshold: Option<f32>,
    /// Block at or above.
    pub high_risk_threshold: Option<f32>,
    /// With no verdict: keep the rules' tier (true) or block (false).
    pub fallback_to_rules: Option<bool>,
    /// Cache verdicts.
    pub enable_caching: Option<bool>,
    /// Cache time to live.
    pub cache_ttl_seconds: Option<u64>,
    /// Circuit breaker on.
    pub circuit_breaker_enabled: Option<bool>,
    /// Consecutive failures that open the breaker.
    pub failure_threshold: Option<u32>,
    /// Consecutive successes that close it.
    pub success_threshold: Option<u32>,
    /// How long it stays open.
    pub timeout_duration_seconds: Option<u64>,
    /// The input agent.
    pub enable_input_agent: Option<bool>,
    /// The state agent.
    pub enable_state_agent: Option<bool>,
    /// The output agent.
    pub enable_output_agent: Option<bool>,
    /// Most calls in flight.
    pub max_in_flight: Option<usize>,
    /// Most requests queued for a call; beyond, `overload`.
    pub max_queued: Option<usize>,
    /// Price per million input tokens.
    pub input_price_per_million: Option<f64>,
    /// Price per million output tokens.
    pub output_price_per_million: Option<f64>,
    /// Tokens a tenant may spend per UTC day.
    pub tenant_daily_token_budget: Option<u64>,
    /// The confidence every verdict needs to lower the rules' tier.
    pub min_confidence_to_lower: Option<f32>,
    /// Bytes of redacted prompt and response a judge sees.
    pub excerpt_bytes: Option<usize>,
}

/// The judges as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedJudges {
    /// Provider settings.
    pub judge: JudgeConfig,
    /// Agents asked.
    pub agents: AgentSwitches,
    /// How verdicts combine.
    pub decider: Decider,
    /// Excerpt size.
    pub excerpt_bytes: usize,
}

/// A key of the section and what is wrong with it.
pub type KeyError = (String, String);

fn key(name: &str, why: impl Into<String>) -> KeyError {
    (format!("shadow_agents.{name}"), why.into())
}

/// The seed's per-profile settings: (temperature, fallback_to_rules, timeout_ms).
fn profile_defaults(p: Profile) -> (f32, bool, Option<u64>) {
    match p {
        Profile::HighSecurity => (0.0, false, None),
        Profile::Balanced => (0.1, true, None),
        Profile::Performance => (0.1, true, Some(2000)),
    }
}

impl ShadowAgentsConfig {
    fn profile(&self) -> Result<Option<Profile>, KeyError> {
        self.profile
            .as_deref()
            .map(|name| {
                Profile::parse(name).ok_or_else(|| {
                    key(
                        "profile",
                        format!("unknown profile `{name}` (high_security, balanced, performance)"),
                    )
                })
            })
            .transpose()
    }

    /// The tier thresholds this section sets, if it sets any (profile, then explicit keys).
    pub fn thresholds(&self) -> Result<Option<RiskThresholds>, KeyError> {
        let explicit = [
            self.low_risk_threshold,
            self.medium_risk_threshold,
            self.high_risk_threshold,
        ];
        let profile = self.profile()?;
        if profile.is_none() && explicit.iter().all(Option::is_none) {
            return Ok(None);
        }
        let mut t = profile.unwrap_or_default().thresholds();
        t.low = self.low_risk_threshold.unwrap_or(t.low);
        t.medium = self.medium_risk_threshold.unwrap_or(t.medium);
        t.high = self.high_risk_threshold.unwrap_or(t.high);
        t.validate().map_err(|e| key("medium_risk_threshold", e))?;
        Ok(Some(t))
    }

    /// The resolved judges, `None` when disabled; `env` reads a variable (the API keys).
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<ResolvedJudges>, KeyError> {
        self.thresholds()?;
        if !self.enabled {
            return Ok(None);
        }
        let profile = self.profile()?.unwrap_or_default();
        let (temperature, fallback_to_rules, profile_timeout) = profile_defaults(profile);
        let provider_name = self.llm_provider.as_deref().unwrap_or("anthropic");
        let provider = ProviderKind::parse(provider_name).ok_or_else(|| {
            key(
                "llm_provider",
                format!("unknown provider `{provider_name}` (anthropic, openai, local)"),
            )
        })?;
        let model = match (&self.llm_model, provider) {
            (Some(m), _) if !m.trim().is_empty() => m.clone(),
            (Some(_), _) => return Err(key("llm_model", "must not be empty")),
            (None, ProviderKind::Anthropic) => "claude-3-5-haiku-20241022".into(),
            (None, ProviderKind::OpenAi) => "gpt-4o-mini".into(),
            (None, ProviderKind::Local) => return Err(key("llm_model", "name the local model (e.g. llama3.1:8b)")),
        };
        let mut judge = JudgeConfig::new(provider, &model);
        if let Some(url) = &self.llm_base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(key(
                    "llm_base_url",
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
            judge.base_url = url.trim_end_matches('/').to_owned();
        }
        judge.api_key = match (&self.api_key, provider.key_variable()) {
            (Some(k), _) if !k.is_empty() => Some(k.clone()),
            (_, Some(var)) => Some(env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                key(
                    "api_key",
                    format!("no API key for {provider_name}: set {var}, or `api_key: ${{VARIABLE}}`"),
                )
            })?),
            (_, None) => None,
        };
        judge.temperature = self.temperature.unwrap_or(temperature);
        if !(0.0..=2.0).contains(&judge.temperature) {
            return Err(key("temperature", "must be within 0..=2"));
        }
        judge.max_tokens = self.max_tokens.unwrap_or(judge.max_tokens);
        if judge.max_tokens == 0 {
            return Err(key("max_tokens", "must be at least 1"));
        }
        let timeout_ms = self.timeout_ms.or(profile_timeout).unwrap_or(5000);
        if timeout_ms == 0 {
            return Err(key("timeout_ms", "must be at least 1"));
        }
        judge.timeout = Duration::from_millis(timeout_ms);
        judge.breaker = BreakerConfig {
            enabled: self.circuit_breaker_enabled.unwrap_or(true),
            failure_threshold: positive(self.failure_threshold, 5, "failure_threshold")?,
            success_threshold: positive(self.success_threshold, 3, "success_threshold")?,
            open_for: Duration::from_secs(positive(self.timeout_duration_seconds, 60, "timeout_duration_seconds")?),
        };
        judge.cache_ttl = match (
            self.enable_caching.unwrap_or(true),
            self.cache_ttl_seconds.unwrap_or(3600),
        ) {
            (false, _) | (true, 0) => None,
            (true, secs) => Some(Duration::from_secs(secs)),
        };
        judge.max_in_flight = positive(self.max_in_flight, judge.max_in_flight, "max_in_flight")?;
        judge.max_queued = positive(self.max_queued, judge.max_queued, "max_queued")?;
        for (name, price) in [
            ("input_price_per_million", self.input_price_per_million),
            ("output_price_per_million", self.output_price_per_million),
        ] {
            if price.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
                return Err(key(name, "must be a non-negative number"));
            }
        }
        judge.input_price_per_million = self.input_price_per_million.unwrap_or(0.0);
        judge.output_price_per_million = self.output_price_per_million.unwrap_or(0.0);
        judge.tenant_daily_tokens = self.tenant_daily_token_budget;
        let agents = AgentSwitches {
            input: self.enable_input_agent.unwrap_or(true),
            state: self.enable_state_agent.unwrap_or(true),
            output: self.enable_output_agent.unwrap_or(true),
        };
        if !agents.any() {
            return Err(key(
                "enable_input_agent",
                "every agent is switched off: set `enabled: false` instead",
            ));
        }
        let lower_confidence = self.min_confidence_to_lower.unwrap_or(0.8);
        if !(0.0..=1.0).contains(&lower_confidence) {
            return Err(key("min_confidence_to_lower", "must be within 0..=1"));
        }
        let excerpt_bytes = self.excerpt_bytes.unwrap_or(8192);
        if !(256..=65_536).contains(&excerpt_bytes) {
            return Err(key("excerpt_bytes", "must be within 256..=65536"));
        }
        Ok(Some(ResolvedJudges {
            judge,
            agents,
            decider: Decider {
                fallback_to_rules: self.fallback_to_rules.unwrap_or(fallback_to_rules),
                lower_confidence,
            },
            excerpt_bytes,
        }))
    }
}

fn positive<T: PartialOrd + Default + Copy>(value: Option<T>, default: T, name: &str) -> Result<T, KeyError> {
    let v = value.unwrap_or(default);
    if v > T::default() {
        Ok(v)
    } else {
        Err(key(name, "must be at least 1"))
    }
}
