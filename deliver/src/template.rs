//! Webhook body templates in the integration seed's syntax, `{{ .anomaly.title }}`, rendered by
//! minijinja. The seed's leading dot is dropped before compiling. Every value is written
//! JSON-escaped (a string's contents, without quotes, so it fits inside the template's own
//! quotes), a missing field is an error, and a fuel limit bounds what a template may compute.
//! [`Template::check`] renders a sample of every event the webhook receives at start, so a
//! typo is a config error, not a failed delivery.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior};

/// Instructions a render may take: plenty for a body, none for a runaway loop.
const FUEL: u64 = 50_000;

/// A compiled template.
#[derive(Clone)]
pub struct Template {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template").finish_non_exhaustive()
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.env, &other.env)
    }
}

const NAME: &str = "body";

impl Template {
    /// Compiles `text`; a syntax error says where.
    ///
    /// ```
    /// use sentinel_deliver::template::Template;
    /// let t = Template::compile(r#"{"text": "{{ .anomaly.title }} ({{ .anomaly.score }})"}"#).unwrap();
    /// let body = t.render(&serde_json::json!({"anomaly": {"title": "a \"quoted\" title", "score": 0.9}})).unwrap();
    /// assert_eq!(body, r#"{"text": "a \"quoted\" title (0.9)"}"#);
    /// assert!(t.render(&serde_json::json!({"alert": {}})).is_err(), "a missing field is an error");
    /// ```
    pub fn compile(text: &str) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_formatter(|out, _state, value| {
            let text = json_text(value);
            out.write_str(&text)
                .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write the body"))
        });
        env.add_template_owned(NAME, drop_leading_dots(text))
            .map_err(|e| describe(&e))?;
        Ok(Template { env: Arc::new(env) })
    }

    /// Renders with `context` (the record as JSON: `{"event", "timestamp", "anomaly" | "alert"}`).
    pub fn render(&self, context: &serde_json::Value) -> Result<String, String> {
        let template = self.env.get_template(NAME).map_err(|e| describe(&e))?;
        template
            .render(Value::from(minijinja::value::Serde(context)))
            .map_err(|e| describe(&e))
    }

    /// Renders `context` and checks the body is JSON: for config checks at start. A field the
    /// context lacks is named, in the seed's syntax.
    pub fn check(&self, context: &serde_json::Value) -> Result<(), String> {
        if let Ok(template) = self.env.get_template(NAME) {
            let mut missing: Vec<String> = template
                .undeclared_variables(true)
                .into_iter()
                .filter(|path| {
                    let root = path.split('.').next().unwrap_or_default();
                    !self.env.globals().any(|(name, _)| name == root) && !resolves(context, path)
                })
                .collect();
            missing.sort();
            if let Some(first) = missing.first() {
                let known: Vec<&str> = context
                    .as_object()
                    .map_or(Vec::new(), |o| o.keys().map(String::as_str).collect());
                return Err(format!(
                    "unknown field `.{first}` (the event has {})",
                    known.iter().map(|k| format!("`.{k}`")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let body = self.render(context)?;
        serde_json::from_str::<serde_json::Value>(&body)
            .map(|_| ())
            .map_err(|e| format!("the rendered body is not JSON ({e}): {}", clip(&body)))
    }
}

/// A value as it goes into a JSON body: a string's escaped contents; numbers and booleans as
/// they are; `none` as nothing; lists and maps as JSON.
/// Whether the dotted `path` names a value in `context`.
fn resolves(context: &serde_json::Value, path: &str) -> bool {
    let mut at = context;
    for part in path.split('.') {
        match at.get(part) {
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

fn json_text(value: &Value) -> String {
    if let Some(s) = value.as_str() {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        return quoted[1..quoted.len() - 1].to_owned();
    }
    if value.is_none() || value.is_undefined() {
        return String::new();
    }
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// `{{ .anomaly.title }}` → `{{ anomaly.title }}`: inside tags, a dot that starts a path (after
/// a delimiter, a space or an opening bracket) is the seed's Go-template root and is dropped.
fn drop_leading_dots(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(['{']) {
        let (before, tail) = rest.split_at(open);
        out.push_str(before);
        let close = match tail.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            _ => {
                out.push('{');
                rest = &tail[1..];
                continue;
            }
        };
        let Some(end) = tail.find(close) else {
            out.push_str(tail);
            return out;
        };
        let inner = &tail[2..end];
        out.push_str(&tail[..2]);
        let mut prev = ' ';
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            let starts_path = c == '.'
                && matches!(
                    prev,
                    ' ' | '\t' | '\n' | '(' | '[' | ',' | '|' | '=' | '!' | '<' | '>' | '+' | '-' | '~'
                )
                && chars.peek().is_some_and(|n| n.is_ascii_alphabetic() || *n == '_');
            if !starts_path {
                out.push(c);
            }
            prev = c;
        }
        out.push_str(close);
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    out
}

fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        let _ = write!(text, " (template line {line})");
    }
    text
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seed_slack_template_renders_valid_json_with_escaped_values() {
        let seed = r#"{
  "text": "Critical Anomaly Detected",
  "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "{{ .anomaly.title }}"}},
    {"type": "section", "fields": [
      {"type": "mrkdwn", "text": "*Severity:*\n{{ .anomaly.severity }}"},
      {"type": "mrkdwn", "text": "*Score:*\n{{ .anomaly.score }}"}
    ]},
    {"type": "section", "text": {"type": "mrkdwn", "text": "{{ .anomaly.description }}"}}
  ]
}"#;
        let t = Template::compile(seed).unwrap();
        let ctx = json!({"anomaly": {
            "title": "Injection \"ignore previous\"\n</script>",
            "severity": "critical",
            "score": 0.97,
            "description": "back\\slash and {{ .not.a.template }}"
        }});
        let body: serde_json::Value = serde_json::from_str(&t.render(&ctx).unwrap()).unwrap();
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            "Injection \"ignore previous\"\n</script>"
        );
        assert_eq!(body["blocks"][1]["fields"][1]["text"], "*Score:*\n0.97");
        // A value that looks like a template is data, not code.
        assert_eq!(
            body["blocks"][2]["text"]["text"],
            "back\\slash and {{ .not.a.template }}"
        );
    }

    #[test]
    fn unknown_fields_syntax_errors_and_runaway_loops_fail() {
        let t = Template::compile(r#"{"x": "{{ .anomaly.titel }}"}"#).unwrap();
        let err = t.check(&json!({"anomaly": {"title": "t"}})).unwrap_err();
        assert!(err.contains("`.anomaly.titel`"), "{err}");
        assert!(Template::compile("{{ .anomaly.title ").is_err());
        let spin =
            Template::compile("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}")
                .unwrap();
        assert!(spin.render(&json!({})).is_err(), "fuel runs out");
    }

    #[test]
    fn dots_are_dropped_only_where_a_path_starts() {
        assert_eq!(drop_leading_dots("{{ .a.b }}"), "{{ a.b }}");
        assert_eq!(
            drop_leading_dots("{% if .a.score > 0.5 %}x{% endif %}"),
            "{% if a.score > 0.5 %}x{% endif %}"
        );
        assert_eq!(
            drop_leading_dots("{\"k\": 1.5, \"t\": \"{{.a}}\"}"),
            "{\"k\": 1.5, \"t\": \"{{a}}\"}"
        );
    }
}
