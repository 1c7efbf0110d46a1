//! Finds the line of a key path such as `detectors[0].config.window` in block-style YAML, so
//! errors raised after the parser has moved on still point at the right line.

/// 1-based line of `path` in `text`, if it can be found.
pub fn line_of_path(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut start, mut end, mut parent_indent) = (0usize, lines.len(), -1i64);
    let mut found = None;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, index) = match segment.find('[') {
            Some(b) => (&segment[..b], segment[b + 1..segment.len() - 1].parse::<usize>().ok()),
            None => (segment, None),
        };
        if !key.is_empty() {
            let (line, indent) = find_key(&lines, start, end, parent_indent, key)?;
            found = Some(line);
            start = line + 1;
            end = block_end(&lines, start, end, indent);
            parent_indent = indent;
        }
        if let Some(i) = index {
            let (line, indent) = find_item(&lines, start, end, parent_indent, i)?;
            found = Some(line);
            let item_end = item_end(&lines, line + 1, end, indent);
            // Keys of the item start on its own line after "- ", two columns in.
            start = line;
            end = item_end;
            parent_indent = indent;
        }
    }
    found.map(|l| l + 1)
}

fn indent_of(line: &str) -> i64 {
    (line.len() - line.trim_start().len()) as i64
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// The first `key:` deeper than `parent`, reading an item's "- key:" line as indented by two more.
fn find_key(lines: &[&str], start: usize, end: usize, parent: i64, key: &str) -> Option<(usize, i64)> {
    for (n, line) in lines.iter().enumerate().take(end).skip(start) {
        if !is_content(line) {
            continue;
        }
        let mut indent = indent_of(line);
        let mut rest = line.trim_start();
        if let Some(after) = rest.strip_prefix("- ") {
            indent += 2;
            rest = after;
        }
        if indent > parent && rest.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with(':')) {
            return Some((n, indent));
        }
    }
    None
}

fn find_item(lines: &[&str], start: usize, end: usize, parent: i64, index: usize) -> Option<(usize, i64)> {
    let mut seen = 0;
    let mut item_indent = None;
    for (n, line) in lines.iter().enumerate().take(end).skip(start) {
        let indent = indent_of(line);
        if !is_content(line) || indent < parent.max(0) {
            continue;
        }
        if line.trim_start().starts_with("- ") || line.trim() == "-" {
            if *item_indent.get_or_insert(indent) != indent {
                continue;
            }
            if seen == index {
                return Some((n, indent));
            }
            seen += 1;
        }
    }
    None
}

fn block_end(lines: &[&str], start: usize, end: usize, indent: i64) -> usize {
    (start..end)
        .find(|&n| is_content(lines[n]) && indent_of(lines[n]) <= indent && !lines[n].trim_start().starts_with("- "))
        .unwrap_or(end)
}

fn item_end(lines: &[&str], start: usize, end: usize, indent: i64) -> usize {
    (start..end)
        .find(|&n| is_content(lines[n]) && indent_of(lines[n]) <= indent)
        .unwrap_or(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "job:\n  batch_records: 10\ndetectors:\n  - id: a\n    config:\n      metric: x\n  - id: b\n    type: statistical\n    config:\n      # comment\n      metric: y\n      window: 5m\n";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(line_of_path(YAML, "job.batch_records"), Some(2));
        assert_eq!(line_of_path(YAML, "detectors[0].id"), Some(4));
        assert_eq!(line_of_path(YAML, "detectors[1].config.metric"), Some(11));
        assert_eq!(line_of_path(YAML, "detectors[1].config.window"), Some(12));
        assert_eq!(line_of_path(YAML, "detectors[1]"), Some(7));
        assert_eq!(line_of_path(YAML, "detectors[2]"), None);
    }
}
