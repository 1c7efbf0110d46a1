//! `${NAME}` expansion from the environment, for secrets kept out of config files.

/// Replaces every `${NAME}` with the variable's value; `$${` escapes a literal `${`.
/// A variable that is not set is an error naming it and its line.
pub fn expand(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            if rest[..at].ends_with('$') {
                out.push_str(&rest[..at - 1]);
                out.push_str("${");
                rest = &rest[at + 2..];
                continue;
            }
            out.push_str(&rest[..at]);
            let Some(close) = rest[at..].find('}') else {
                return Err(format!("line {}: unterminated `${{`", n + 1));
            };
            let name = &rest[at + 2..at + close];
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("line {}: `${{{name}}}` is not a valid variable name", n + 1));
            }
            match std::env::var(name) {
                Ok(v) => out.push_str(&v),
                Err(_) => return Err(format!("line {}: environment variable `{name}` is not set", n + 1)),
            }
            rest = &rest[at + close + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}
