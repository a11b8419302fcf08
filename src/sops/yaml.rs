//! YAML out: the decrypted documents in their key order. Comments are not written back
//! (sops keeps them; a manifest build has no use for them), and scalars are quoted as the
//! YAML library quotes them, so the text differs from `sops --decrypt` where YAML allows
//! several spellings of one value; the tests compare parsed trees.

use serde_yaml::{Mapping, Number, Value};

use super::tree::{Item, Node};

fn value(n: &Node) -> Value {
    match n {
        Node::Map(items) => {
            let mut m = Mapping::new();
            for i in items {
                if let Item::Pair(k, v) = i {
                    m.insert(Value::String(k.clone()), value(v));
                }
            }
            Value::Mapping(m)
        }
        Node::List(values) => Value::Sequence(values.iter().filter(|v| !matches!(v, Node::Comment(_))).map(value).collect()),
        Node::Str(s) | Node::Time(s) | Node::Comment(s) => Value::String(s.clone()),
        Node::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Node::Int(i) => Value::Number(Number::from(*i)),
        // sops's YAML library writes a float without a fraction as an integer (`1.0` comes
        // back as `1`).
        Node::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::Number(Number::from(*f as i64)),
        Node::Float(f) => Value::Number(Number::from(*f)),
        Node::Bool(b) => Value::Bool(*b),
        Node::Null => Value::Null,
    }
}

/// The documents as one YAML stream.
pub fn emit(documents: &[Vec<Item>]) -> Result<Vec<u8>, String> {
    let mut out = String::new();
    for (i, d) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(&value(&Node::Map(d.clone()))).map_err(|e| e.to_string())?);
    }
    Ok(out.into_bytes())
}
