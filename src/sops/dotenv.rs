//! dotenv files as sops reads and writes them: one `KEY=value` per line (`\n` in a value
//! written as the two characters `\n`), `#` comment lines, and the metadata flattened into
//! `sops_` keys.

use super::tree::{Item, Node};

/// The entries of a dotenv file, and its flattened metadata (prefix removed).
pub fn parse(text: &str) -> Result<super::metadata::Parsed, String> {
    let mut items = Vec::new();
    let mut metadata = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            items.push(Item::Comment(comment.to_string()));
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| format!("line {} has no '='", n + 1))?;
        let value = value.replace("\\n", "\n");
        match key.strip_prefix("sops_") {
            Some(meta) => metadata.push((meta.to_string(), value)),
            None => items.push(Item::Pair(key.to_string(), Node::Str(value))),
        }
    }
    Ok((items, metadata))
}

/// The decrypted entries as `sops --decrypt` prints them.
pub fn emit(items: &[Item]) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for item in items {
        match item {
            Item::Comment(c) => out.push_str(&format!("#{c}\n")),
            Item::Pair(k, v) => {
                let value = match v {
                    Node::Str(s) => s.replace('\n', "\\n"),
                    other => scalar(other).ok_or_else(|| format!("the value of {k} is not a plain value"))?,
                };
                out.push_str(&format!("{k}={value}\n"));
            }
        }
    }
    Ok(out.into_bytes())
}

/// A value that is not a string as sops's `ValToString` writes it in dotenv and INI files.
pub fn scalar(v: &Node) -> Option<String> {
    Some(match v {
        Node::Str(s) | Node::Time(s) | Node::Comment(s) => s.clone(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => {
            let s = super::tree::go_float(*f);
            if s.contains('.') || s.contains('e') || s.contains("Inf") || s.contains("NaN") { s } else { format!("{s}.0") }
        }
        Node::Bool(b) => b.to_string(),
        Node::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Node::Null => "<nil>".into(),
        Node::Map(_) | Node::List(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_round_trip() {
        let text = "# note\nA=1\nB=multi\\nline\nsops_mac=M\n";
        let (items, meta) = parse(text).unwrap();
        assert_eq!(items[2], Item::Pair("B".into(), Node::Str("multi\nline".into())));
        assert_eq!(meta, vec![("mac".to_string(), "M".to_string())]);
        assert_eq!(String::from_utf8(emit(&items).unwrap()).unwrap(), "# note\nA=1\nB=multi\\nline\n");
        assert!(parse("novalue\n").unwrap_err().contains("line 1"));
    }
}
