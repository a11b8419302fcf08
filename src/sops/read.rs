//! YAML and JSON read into the [`Node`] tree in file order, through serde's visitor (the
//! crate's `serde_json::Value` sorts keys, and the MAC hashes values in file order).
//! Numbers are typed as sops types them: an integer that fits 64 bits is an int, anything
//! else a float.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::tree::{Item, Node};

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML or JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map(Node::Int).unwrap_or(Node::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Bytes(v.to_vec()))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Node>()? {
            out.push(v);
        }
        Ok(Node::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let key = match key {
                Node::Str(s) => s,
                // sops refuses keys that are not strings when it walks the tree.
                other => return Err(de::Error::custom(format!("a mapping key is not a string ({})", kind(&other)))),
            };
            let value = map.next_value::<Node>()?;
            out.push(Item::Pair(key, value));
        }
        Ok(Node::Map(out))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        // A YAML value with a tag (`!!binary ...`, `!Custom ...`): its value, untagged.
        use de::VariantAccess;
        let (_tag, variant): (Node, _) = data.variant()?;
        variant.newtype_variant::<Node>()
    }
}

fn kind(n: &Node) -> &'static str {
    match n {
        Node::Int(_) => "an integer",
        Node::Float(_) => "a float",
        Node::Bool(_) => "a boolean",
        Node::Null => "null",
        Node::Map(_) | Node::List(_) => "a collection",
        _ => "a value",
    }
}

/// The documents of a YAML stream (empty documents left out).
pub fn yaml_documents(text: &str) -> Result<Vec<Node>, String> {
    let mut docs = Vec::new();
    for d in serde_yaml::Deserializer::from_str(text) {
        let node = Node::deserialize(d).map_err(|e| e.to_string())?;
        if node != Node::Null {
            docs.push(node);
        }
    }
    Ok(docs)
}

/// A JSON document.
pub fn json_document(text: &[u8]) -> Result<Node, String> {
    let mut d = serde_json::Deserializer::from_slice(text);
    let node = Node::deserialize(&mut d).map_err(|e| e.to_string())?;
    d.end().map_err(|e| e.to_string())?;
    Ok(node)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn order_and_types_are_kept() {
        let n = json_document(br#"{"z": 1, "a": [1.5, true, null, "s"], "big": 18446744073709551615}"#).unwrap();
        let Node::Map(items) = &n else { panic!() };
        assert!(matches!(&items[0], Item::Pair(k, Node::Int(1)) if k == "z"));
        assert_eq!(n.get("a"), Some(&Node::List(vec![Node::Float(1.5), Node::Bool(true), Node::Null, Node::Str("s".into())])));
        assert!(matches!(n.get("big"), Some(Node::Float(_))));
        let docs = yaml_documents("b: 1\na: x\n---\n---\nc: [1]\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(matches!(&docs[0], Node::Map(i) if matches!(&i[0], Item::Pair(k, _) if k == "b")));
        assert!(yaml_documents("1: x\n").unwrap_err().contains("not a string"));
    }
}
