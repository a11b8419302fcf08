//! INI files as sops reads and writes them (through the go-ini library): sections in order,
//! keys before the first section in `DEFAULT`, a comment above a section or key belonging
//! to it, and the metadata flattened into a `[sops]` section (newlines written as `\n`).

use super::tree::{Item, Node};

const DEFAULT: &str = "DEFAULT";

/// The sections of an INI file (each a mapping of strings, its comments as entries), and
/// the flattened metadata of its `[sops]` section.
pub fn parse(text: &str) -> Result<super::metadata::Parsed, String> {
    let mut sections: Vec<(String, Vec<Item>)> = vec![(DEFAULT.to_string(), Vec::new())];
    let mut pending: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            pending.push(line.to_string());
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').ok_or_else(|| format!("line {}: unclosed section name", n + 1))?.trim();
            let mut items = Vec::new();
            if !pending.is_empty() {
                items.push(Item::Comment(strip_comment(&pending.join("\n"))));
                pending.clear();
            }
            sections.push((name.to_string(), items));
            continue;
        }
        let at = line.find(['=', ':']).ok_or_else(|| format!("line {}: neither a section nor key = value", n + 1))?;
        let key = unquote_key(line[..at].trim());
        let mut value = line[at + 1..].trim().to_string();
        if let Some(rest) = value.strip_prefix("\"\"\"") {
            // A value over several lines, as go-ini writes one holding a newline.
            let mut text = rest.to_string();
            while !text.ends_with("\"\"\"") {
                let (_, next) = lines.next().ok_or_else(|| format!("line {}: unclosed \"\"\"", n + 1))?;
                text.push('\n');
                text.push_str(next);
            }
            value = text.trim_end_matches("\"\"\"").to_string();
        } else if value.len() >= 2 && ((value.starts_with('`') && value.ends_with('`')) || (value.starts_with('"') && value.ends_with('"')))
        {
            value = value[1..value.len() - 1].to_string();
        } else if let Some(i) = value.find(['#', ';']) {
            value = value[..i].trim().to_string();
        }
        let Some((_, items)) = sections.last_mut() else { continue };
        items.push(Item::Pair(key, Node::Str(value)));
        if !pending.is_empty() {
            items.push(Item::Comment(strip_comment(&pending.join("\n"))));
            pending.clear();
        }
    }
    let mut metadata = Vec::new();
    let mut out = Vec::new();
    for (name, items) in sections {
        if name == "sops" {
            for i in items {
                if let Item::Pair(k, Node::Str(v)) = i {
                    metadata.push((k, v.replace("\\n", "\n")));
                }
            }
        } else {
            out.push(Item::Pair(name, Node::Map(items)));
        }
    }
    Ok((out, metadata))
}

fn unquote_key(key: &str) -> String {
    for q in ["\"\"\"", "`", "\""] {
        if key.len() >= 2 * q.len()
            && let Some(inner) = key.strip_prefix(q).and_then(|k| k.strip_suffix(q))
        {
            return inner.to_string();
        }
    }
    key.to_string()
}

/// sops keeps a comment without its comment character and the spaces after it.
fn strip_comment(c: &str) -> String {
    match c.chars().next() {
        Some(';') => c.trim_start_matches([';', ' ']).to_string(),
        Some('#') => c.trim_start_matches(['#', ' ']).to_string(),
        _ => c.to_string(),
    }
}

fn comment_lines(c: &str, out: &mut String) {
    for line in c.split('\n') {
        match line.chars().next() {
            Some('#' | ';') => out.push_str(&format!("{} {}\n", &line[..1], line[1..].trim())),
            _ => out.push_str(&format!("; {}\n", line.trim())),
        }
    }
}

/// The decrypted sections as `sops --decrypt` prints them (go-ini's pretty format: keys of
/// a section aligned on `=`, a blank line between sections).
pub fn emit(sections: &[Item]) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    let mut blocks: Vec<String> = Vec::new();
    for (i, section) in sections.iter().enumerate() {
        let Item::Pair(name, Node::Map(items)) = section else { continue };
        let mut block = String::new();
        let mut rest = &items[..];
        if let Some(Item::Comment(c)) = rest.first() {
            comment_lines(c, &mut block);
            rest = &rest[1..];
        }
        let keys: Vec<(String, String, Option<&String>)> = {
            let mut keys = Vec::new();
            let mut iter = rest.iter().peekable();
            while let Some(item) = iter.next() {
                if let Item::Pair(k, v) = item {
                    let value = super::dotenv::scalar(v).ok_or_else(|| format!("[{name}] {k} is not a plain value"))?;
                    let comment = match iter.peek() {
                        Some(Item::Comment(c)) => Some(c),
                        _ => None,
                    };
                    keys.push((k.clone(), value, comment));
                }
            }
            keys
        };
        if i > 0 || name != DEFAULT {
            block.push_str(&format!("[{name}]\n"));
        } else if keys.is_empty() {
            continue;
        }
        let shown: Vec<String> = keys.iter().map(|(k, _, _)| quote_key(k)).collect();
        let width = shown.iter().map(String::len).max().unwrap_or(0);
        for ((_, value, comment), key) in keys.iter().zip(&shown) {
            if let Some(c) = comment {
                comment_lines(c, &mut block);
            }
            block.push_str(&format!("{key:width$} = {}\n", quote_value(value)));
        }
        blocks.push(block);
    }
    out.push_str(&blocks.join("\n"));
    Ok(out.into_bytes())
}

fn quote_key(k: &str) -> String {
    if k.contains('"') || k.contains(['=', ':']) {
        format!("`{k}`")
    } else if k.contains('`') {
        format!("\"\"\"{k}\"\"\"")
    } else {
        k.to_string()
    }
}

fn quote_value(v: &str) -> String {
    if v.contains(['\n', '`']) {
        format!("\"\"\"{v}\"\"\"")
    } else if v.contains(['#', ';']) {
        format!("`{v}`")
    } else if v.trim() != v {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sections_round_trip_as_go_ini_writes_them() {
        let text = "top = 1\n\n; c0\n[sec]\n; c1\nk = v one\nn   = 2\n\n[other]\nx = y\n";
        let (items, meta) = parse(text).unwrap();
        assert!(meta.is_empty());
        assert_eq!(String::from_utf8(emit(&items).unwrap()).unwrap(), text.replace("n   =", "n ="));
        let (_, meta) = parse("[sops]\nmac = M\nenc = a\\nb\n").unwrap();
        assert_eq!(meta[1], ("enc".to_string(), "a\nb".to_string()));
    }
}
