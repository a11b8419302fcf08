//! The tree of a SOPS file, as sops itself models it: mappings keep their order and carry
//! comments as entries of their own, because the MAC is a hash over the values in file order
//! and a comment is a value that may be encrypted too.

/// One value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Map(Vec<Item>),
    List(Vec<Node>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// sops's `bytes` type (written by old sops versions).
    Bytes(Vec<u8>),
    /// sops's `time` type, kept as its RFC 3339 text.
    Time(String),
    /// A comment line inside a list (or a comment value).
    Comment(String),
    Null,
}

/// One entry of a mapping: a key and its value, or a comment line.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Pair(String, Node),
    Comment(String),
}

impl Node {
    /// The entry `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(items) => items.iter().find_map(|i| match i {
                Item::Pair(k, v) if k == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) | Node::Time(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes sops hashes for this value (its `ToBytes`): strings as they are, numbers in
    /// Go's formatting, booleans as `True`/`False`. `None` for what is never hashed
    /// (comments, null, containers).
    pub fn mac_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Node::Str(s) | Node::Time(s) => Some(s.as_bytes().to_vec()),
            Node::Int(i) => Some(i.to_string().into_bytes()),
            Node::Float(f) => Some(go_float(*f).into_bytes()),
            Node::Bool(b) => Some(if *b { b"True".to_vec() } else { b"False".to_vec() }),
            Node::Bytes(b) => Some(b.clone()),
            Node::Map(_) | Node::List(_) | Node::Comment(_) | Node::Null => None,
        }
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` writes it: the shortest decimal
/// that reads back as the same float, never with an exponent (Rust's `Display` does the
/// same), and Go's spelling of the infinities.
pub fn go_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_go_writes_them() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.1), "0.1");
        assert_eq!(go_float(1e21), "1000000000000000000000");
        assert_eq!(go_float(1.5e-7), "0.00000015");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn mac_bytes_follow_sops() {
        assert_eq!(Node::Bool(true).mac_bytes().as_deref(), Some(&b"True"[..]));
        assert_eq!(Node::Int(-3).mac_bytes().as_deref(), Some(&b"-3"[..]));
        assert_eq!(Node::Comment("x".into()).mac_bytes(), None);
        assert_eq!(Node::Null.mac_bytes(), None);
    }
}
