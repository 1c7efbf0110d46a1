//! The judges' settings, resolved: the binary's `shadow_agents:` section validates the YAML
//! and builds this.

use std::time::Duration;

/// Which API the judges speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// The Anthropic Messages API (`x-api-key`, `anthropic-version`).
    Anthropic,
    /// OpenAI Chat Completions.
    OpenAi,
    /// Any OpenAI-compatible server: Ollama, LM Studio, vLLM, llama.cpp.
    Local,
}

impl ProviderKind {
    /// Parses `anthropic`, `openai` or `local`.
    pub fn parse(name: &str) -> Option<ProviderKind> {
        match name {
            "anthropic" => Some(ProviderKind::Anthropic),
            "openai" => Some(ProviderKind::OpenAi),
            "local" => Some(ProviderKind::Local),
            _ => None,
        }
    }

    /// Wire name, as analyses report it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Local => "local",
        }
    }

    /// The API base when `llm_base_url` is not set.
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Local => "http://localhost:11434/v1",
        }
    }

    /// The environment variable holding the key when the config names none.
    pub fn key_variable(self) -> Option<&'static str> {
        match self {
            ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Local => None,
        }
    }
}

/// Circuit breaker settings (the seed's keys).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Off: every call goes through.
    pub enabled: bool,
    /// Consecutive eligible failures that open it.
    pub failure_threshold: u32,
    /// Consecutive successes in half-open that close it.
    pub success_threshold: u32,
    /// How long it stays open (longer if the provider's `retry-after` says so).
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_threshold: 5,
            success_threshold: 3,
            open_for: Duration::from_secs(60),
        }
    }
}

/// Everything the live judges need.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeConfig {
    /// API spoken.
    pub provider: ProviderKind,
    /// Model name.
    pub model: String,
    /// API base (`.../v1`); endpoints are `{base}/messages` and `{base}/chat/completions`.
    pub base_url: String,
    /// API key (none for a local server without one).
    pub api_key: Option<String>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Most tokens a reply may have.
    pub max_tokens: u32,
    /// The longest a request waits for its verdicts.
    pub timeout: Duration,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
    /// Verdict cache time to live; `None` caches nothing.
    pub cache_ttl: Option<Duration>,
    /// Most verdicts cached.
    pub cache_capacity: u64,
    /// Most calls in flight at once.
    pub max_in_flight: usize,
    /// Most requests waiting for a call; beyond, a request falls back with `overload`.
    pub max_queued: usize,
    /// Price per million input tokens, for the cost figures.
    pub input_price_per_million: f64,
    /// Price per million output tokens.
    pub output_price_per_million: f64,
    /// Tokens a tenant may spend per UTC day; beyond, its requests fall back with `budget`.
    pub tenant_daily_tokens: Option<u64>,
    /// Runtime threads for the calls.
    pub threads: usize,
}

impl JudgeConfig {
    /// Defaults for `provider` and `model` (the seed's values).
    pub fn new(provider: ProviderKind, model: &str) -> Self {
        JudgeConfig {
            provider,
            model: model.to_owned(),
            base_url: provider.default_base_url().to_owned(),
            api_key: None,
            temperature: 0.1,
            max_tokens: 1024,
            timeout: Duration::from_millis(5000),
            breaker: BreakerConfig::default(),
            cache_ttl: Some(Duration::from_secs(3600)),
            cache_capacity: 100_000,
            max_in_flight: 64,
            max_queued: 1024,
            input_price_per_million: 0.0,
            output_price_per_million: 0.0,
            tenant_daily_tokens: None,
            threads: 1,
        }
    }
}
