//! The `guards:` section: content guards, tiers, per-application policies and the behavioral
//! detectors' limits.

use std::collections::BTreeMap;

use sentinel_dataflows::detect::BehaviorConfig;
use sentinel_dataflows::guard::{GuardPolicy, PolicyBook, Profile, RiskThresholds};
use serde::Deserialize;

/// `guards:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardsConfig {
    /// Run the guards, behavioral detectors and decisions at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `high_security`, `balanced` or `performance`: the tier thresholds.
    #[serde(default)]
    pub profile: Option<String>,
    /// Explicit thresholds, overriding the profile's.
    #[serde(default)]
    pub thresholds: Option<RiskThresholds>,
    /// The default policy (applications without their own).
    #[serde(flatten)]
    pub default: PolicyOverride,
    /// Per `application_id`: overrides of the default policy.
    #[serde(default)]
    pub applications: BTreeMap<String, PolicyOverride>,
    /// Behavioral detectors' limits.
    #[serde(default)]
    pub behavior: BehaviorConfig,
    /// Write one decision per request to the `decisions` output.
    #[serde(default = "yes")]
    pub decisions: bool,
}

impl Default for GuardsConfig {
    fn default() -> Self {
        GuardsConfig {
            enabled: true,
            profile: None,
            thresholds: None,
            default: PolicyOverride::default(),
            applications: BTreeMap::new(),
            behavior: BehaviorConfig::default(),
            decisions: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// Policy keys, each optional so an application overrides only what it names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    /// Injection and jailbreak detection on prompts.
    pub prompt_injection: Option<bool>,
    /// Personal data in prompts and responses.
    pub pii: Option<bool>,
    /// Credentials in prompts and responses.
    pub secrets: Option<bool>,
    /// The output guard.
    pub output: Option<bool>,
    /// Canary tokens planted in system prompts.
    pub canary_tokens: Option<Vec<String>>,
    /// Injection rule ids to ignore.
    pub allow_rules: Option<Vec<String>>,
    /// Values never reported (exact, or a suffix such as `@example.com`).
    pub allow_values: Option<Vec<String>>,
    /// Tools agents may call; empty allows any.
    pub allowed_tools: Option<Vec<String>>,
    /// Profile for this application.
    pub profile: Option<String>,
    /// Thresholds for this application.
    pub thresholds: Option<RiskThresholds>,
}

impl PolicyOverride {
    fn apply(&self, base: &GuardPolicy) -> Result<GuardPolicy, String> {
        let mut p = base.clone();
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { p.$f = v.clone(); } )* };
        }
        take!(
            prompt_injection,
            pii,
            secrets,
            output,
            canary_tokens,
            allow_rules,
            allow_values,
            allowed_tools
        );
        if let Some(name) = &self.profile {
            p.thresholds = profile(name)?.thresholds();
        }
        if let Some(t) = self.thresholds {
            t.validate()?;
            p.thresholds = t;
        }
        Ok(p)
    }
}

fn profile(name: &str) -> Result<Profile, String> {
    Profile::parse(name).ok_or_else(|| format!("unknown profile `{name}` (high_security, balanced, performance)"))
}

impl GuardsConfig {
    /// The resolved policies, starting from `tiers` when given (the `shadow_agents` keys), or
    /// the key that is wrong and why.
    pub fn policies_with(&self, tiers: Option<RiskThresholds>) -> Result<PolicyBook, (String, String)> {
        let mut base = GuardPolicy::default();
        if let Some(t) = tiers {
            base.thresholds = t;
        }
        if let Some(name) = &self.profile {
            base.thresholds = profile(name)
                .map_err(|e| ("guards.profile".to_owned(), e))?
                .thresholds();
        }
        if let Some(t) = self.thresholds {
            t.validate().map_err(|e| ("guards.thresholds".to_owned(), e))?;
            base.thresholds = t;
        }
        let default = self.default.apply(&base).map_err(|e| ("guards".to_owned(), e))?;
        let mut applications = std::collections::HashMap::new();
        for (app, o) in &self.applications {
            let p = o
                .apply(&default)
                .map_err(|e| (format!("guards.applications.{app}"), e))?;
            applications.insert(app.clone(), p);
        }
        Ok(PolicyBook { default, applications })
    }
}
