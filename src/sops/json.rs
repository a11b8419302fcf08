//! JSON as sops prints it: Go's `encoding/json` formatting (tab indentation, `\u003c` for
//! `<`, `>` and `&`, floats in Go's shortest form), so a decrypted file is byte for byte
//! what `sops --decrypt` writes.

use super::tree::{Item, Node};

/// The tree as indented JSON with a final newline.
pub fn emit(items: &[Item]) -> String {
    let mut out = String::new();
    map(items, 0, &mut out);
    out.push('\n');
    out
}

fn indent(depth: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..depth {
        out.push('\t');
    }
}

fn map(items: &[Item], depth: usize, out: &mut String) {
    let pairs: Vec<(&String, &Node)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Pair(k, v) => Some((k, v)),
            Item::Comment(_) => None,
        })
        .collect();
    if pairs.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (n, (k, v)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        indent(depth + 1, out);
        string(k, out);
        out.push_str(": ");
        value(v, depth + 1, out);
    }
    indent(depth, out);
    out.push('}');
}

fn value(v: &Node, depth: usize, out: &mut String) {
    match v {
        Node::Map(items) => map(items, depth, out),
        Node::List(values) => {
            let values: Vec<&Node> = values.iter().filter(|v| !matches!(v, Node::Comment(_))).collect();
            if values.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (n, v) in values.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                indent(depth + 1, out);
                value(v, depth + 1, out);
            }
            indent(depth, out);
            out.push(']');
        }
        Node::Str(s) | Node::Time(s) | Node::Comment(s) => string(s, out),
        Node::Bytes(b) => {
            use base64::Engine;
            string(&base64::engine::general_purpose::STANDARD.encode(b), out);
        }
        Node::Int(i) => out.push_str(&i.to_string()),
        Node::Float(f) => out.push_str(&float(*f)),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Null => out.push_str("null"),
    }
}

/// Go's JSON float: shortest form, with an exponent below 1e-6 and from 1e21 on
/// (`1e+21`, `1e-7`).
fn float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        let digits = if digits.len() < 2 { format!("0{digits}") } else { digits.to_string() };
        // Go writes at least two exponent digits only below 1e-6 ("1e-07"), then cuts the
        // leading zero of a one-digit exponent.
        let digits = digits.strip_prefix('0').filter(|d| !d.is_empty()).unwrap_or(&digits).to_string();
        return format!("{mantissa}e{sign}{digits}");
    }
    super::tree::go_float(f)
}

/// A JSON string as Go escapes it.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formatting() {
        assert_eq!(float(1e300), "1e+300");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(1e-7), "1e-7");
        assert_eq!(float(2.5), "2.5");
        assert_eq!(float(123456789.0), "123456789");
        let mut s = String::new();
        string("<x>&\"\u{1}", &mut s);
        assert_eq!(s, r#""\u003cx\u003e\u0026\"\u0001""#);
        let tree = vec![Item::Pair("a".into(), Node::Map(vec![])), Item::Pair("b".into(), Node::List(vec![Node::Int(1)]))];
        assert_eq!(emit(&tree), "{\n\t\"a\": {},\n\t\"b\": [\n\t\t1\n\t]\n}\n");
    }
}
