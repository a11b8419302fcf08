//! The `sops` block of a file: who can decrypt its data key, which values are encrypted, and
//! the MAC over them. YAML and JSON nest it under `sops`; dotenv and INI flatten it into
//! keys (`sops_age__list_0__map_recipient`), which [`unflatten`] turns back into the tree.

use std::collections::BTreeMap;

use super::tree::{Item, Node};

/// sops's default when a file names no rule: keys ending in `_unencrypted` stay plain.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// An age recipient and the data key encrypted to it (an armored age file).
#[derive(Debug, Clone)]
pub struct AgeKey {
    pub recipient: String,
    pub enc: String,
}

/// A PGP key (by fingerprint) and the data key encrypted to it (an armored message).
#[derive(Debug, Clone)]
pub struct PgpKey {
    pub fingerprint: String,
    pub enc: String,
}

/// The keys of one key group.
#[derive(Debug, Clone, Default)]
pub struct KeyGroup {
    pub age: Vec<AgeKey>,
    pub pgp: Vec<PgpKey>,
    /// Cloud KMS and Vault keys: (the metadata's name for the service, the key's id).
    pub other: Vec<(&'static str, String)>,
}

/// Which values a file encrypts (at most one rule; sops defaults to the unencrypted suffix).
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(String),
    EncryptedRegex(String),
    UnencryptedCommentRegex(String),
    EncryptedCommentRegex(String),
}

/// The parsed metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub groups: Vec<KeyGroup>,
    /// The encrypted MAC (`ENC[...]`, decrypted with `lastmodified` as additional data).
    pub mac: String,
    /// `lastmodified` as sops formats it for the MAC's additional data (RFC 3339, seconds).
    pub last_modified: String,
    pub version: String,
    pub rule: Rule,
    pub mac_only_encrypted: bool,
}

/// Names of the services sops can keep a data key with besides age and PGP, as the
/// metadata spells them, with the field naming the key.
const KMS: &[(&str, &[&str])] = &[
    ("kms", &["arn"]),
    ("gcp_kms", &["resource_id"]),
    ("azure_kv", &["vault_url", "name"]),
    ("hc_vault", &["vault_address", "engine_path", "key_name"]),
    ("hckms", &["key_id"]),
];

/// A metadata value as text: sops reads it weakly typed (a dotenv file has only strings,
/// a YAML file may have a boolean).
fn text(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) | Node::Time(s) => Some(s.clone()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Int(i) => Some(i.to_string()),
        Node::Float(f) => Some(super::tree::go_float(*f)),
        _ => None,
    }
}

fn field(node: &Node, key: &str) -> Option<String> {
    node.get(key).and_then(text).filter(|s| !s.is_empty())
}

fn list<'a>(node: &'a Node, key: &str) -> &'a [Node] {
    match node.get(key) {
        Some(Node::List(l)) => l,
        _ => &[],
    }
}

fn group(node: &Node) -> KeyGroup {
    let mut g = KeyGroup::default();
    for a in list(node, "age") {
        g.age.push(AgeKey { recipient: field(a, "recipient").unwrap_or_default(), enc: field(a, "enc").unwrap_or_default() });
    }
    for p in list(node, "pgp") {
        g.pgp.push(PgpKey { fingerprint: field(p, "fp").unwrap_or_default(), enc: field(p, "enc").unwrap_or_default() });
    }
    for (name, fields) in KMS {
        for k in list(node, name) {
            let id = fields.iter().filter_map(|f| field(k, f)).collect::<Vec<_>>().join("/");
            g.other.push((name, id));
        }
    }
    g
}

/// sops's `lastmodified` as `time.Parse(RFC3339)` then `Format(RFC3339)` gives it back:
/// fractional seconds dropped, a zero offset written `Z`.
fn rfc3339_seconds(value: &str) -> Result<String, String> {
    value.parse::<jiff::Timestamp>().map_err(|e| format!("lastmodified {value:?} is not an RFC 3339 time: {e}"))?;
    let (date_time, offset) = match value.rfind(['+', '-']).filter(|&i| i > 10) {
        Some(i) if !value.ends_with('Z') && !value.ends_with('z') => (&value[..i], &value[i..]),
        _ => (value.trim_end_matches(['Z', 'z']), "Z"),
    };
    let seconds = date_time.split('.').next().unwrap_or(date_time).replace('t', "T");
    let offset = if offset == "+00:00" || offset == "-00:00" { "Z" } else { offset };
    Ok(format!("{seconds}{offset}"))
}

impl Metadata {
    /// Reads the metadata mapping.
    pub fn parse(node: &Node) -> Result<Metadata, String> {
        if !matches!(node, Node::Map(_)) {
            return Err("the sops entry is not a mapping".into());
        }
        let groups = match list(node, "key_groups") {
            [] => vec![group(node)],
            gs => gs.iter().map(group).collect(),
        };
        let mac = field(node, "mac").ok_or("no mac")?;
        let last_modified = rfc3339_seconds(&field(node, "lastmodified").ok_or("no lastmodified")?)?;
        let mut rules = Vec::new();
        for (key, make) in [
            ("unencrypted_suffix", Rule::UnencryptedSuffix as fn(String) -> Rule),
            ("encrypted_suffix", Rule::EncryptedSuffix),
            ("unencrypted_regex", Rule::UnencryptedRegex),
            ("encrypted_regex", Rule::EncryptedRegex),
            ("unencrypted_comment_regex", Rule::UnencryptedCommentRegex),
            ("encrypted_comment_regex", Rule::EncryptedCommentRegex),
        ] {
            if let Some(v) = field(node, key) {
                rules.push(make(v));
            }
        }
        if rules.len() > 1 {
            return Err("more than one of the encrypted/unencrypted suffix and regex rules".into());
        }
        let rule = rules.pop().unwrap_or_else(|| Rule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.into()));
        let mac_only_encrypted = match field(node, "mac_only_encrypted").as_deref() {
            None => false,
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
            Some(_) => return Err("mac_only_encrypted is not a boolean".into()),
        };
        Ok(Metadata { groups, mac, last_modified, version: field(node, "version").unwrap_or_default(), rule, mac_only_encrypted })
    }

    /// Every age recipient and PGP fingerprint, for messages.
    pub fn recipients(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.groups {
            out.extend(g.age.iter().map(|a| format!("age {}", a.recipient)));
            out.extend(g.pgp.iter().map(|p| format!("PGP {}", p.fingerprint)));
        }
        out
    }

    /// The cloud KMS and Vault keys, for messages.
    pub fn others(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| g.other.iter().map(|(kind, id)| format!("{kind} {id}"))).collect()
    }
}

/// Flattened metadata entries (`age__list_0__map_recipient`, value), as dotenv and INI hold
/// them.
pub type Flat = Vec<(String, String)>;

/// A flat format's entries and its flattened metadata.
pub type Parsed = (Vec<super::tree::Item>, Flat);

/// A flattened metadata entry's key as sops writes it: `age__list_0__map_recipient`.
enum Token {
    Map(String),
    List(usize),
}

fn tokens(key: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut rest = key;
    let mut kind_is_list = false;
    loop {
        let next =
            [("__map_", false), ("__list_", true)].iter().filter_map(|(sep, list)| rest.find(sep).map(|i| (i, sep.len(), *list))).min();
        let (end, skip, list) = match next {
            Some(n) => n,
            None => (rest.len(), 0, false),
        };
        let part = &rest[..end];
        out.push(if kind_is_list { Token::List(part.parse().unwrap_or(0)) } else { Token::Map(part.to_string()) });
        if next.is_none() {
            return out;
        }
        rest = &rest[end + skip..];
        kind_is_list = list;
    }
}

#[derive(Default)]
struct Building {
    value: Option<String>,
    map: Vec<(String, Building)>,
    list: BTreeMap<usize, Building>,
}

impl Building {
    fn place(&mut self, path: &[Token], value: String) {
        let Some((first, rest)) = path.split_first() else {
            self.value = Some(value);
            return;
        };
        let next = match first {
            Token::Map(k) => match self.map.iter().position(|(key, _)| key == k) {
                Some(i) => &mut self.map[i].1,
                None => {
                    self.map.push((k.clone(), Building::default()));
                    let last = self.map.len() - 1;
                    &mut self.map[last].1
                }
            },
            Token::List(i) => self.list.entry(*i).or_default(),
        };
        next.place(rest, value);
    }

    fn node(self) -> Node {
        if let Some(v) = self.value {
            return Node::Str(v);
        }
        if !self.list.is_empty() {
            return Node::List(self.list.into_values().map(Building::node).collect());
        }
        Node::Map(self.map.into_iter().map(|(k, b)| Item::Pair(k, b.node())).collect())
    }
}

/// The metadata mapping from flattened `(key, value)` entries (the prefix already removed).
pub fn unflatten(entries: Flat) -> Node {
    let mut root = Building::default();
    for (key, value) in entries {
        root.place(&tokens(&key), value);
    }
    root.node()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flattened_metadata_unflattens() {
        let node = unflatten(vec![
            ("age__list_0__map_recipient".into(), "age1x".into()),
            ("age__list_0__map_enc".into(), "E".into()),
            ("age__list_1__map_recipient".into(), "age1y".into()),
            ("mac".into(), "M".into()),
            ("lastmodified".into(), "2024-01-02T03:04:05Z".into()),
            ("mac_only_encrypted".into(), "true".into()),
        ]);
        let m = Metadata::parse(&node).unwrap();
        assert_eq!(m.groups[0].age.len(), 2);
        assert_eq!(m.groups[0].age[0].enc, "E");
        assert!(m.mac_only_encrypted);
        assert_eq!(m.rule, Rule::UnencryptedSuffix("_unencrypted".into()));
    }

    #[test]
    fn lastmodified_is_formatted_as_sops_formats_it() {
        assert_eq!(rfc3339_seconds("2024-01-02T03:04:05Z").unwrap(), "2024-01-02T03:04:05Z");
        assert_eq!(rfc3339_seconds("2024-01-02T03:04:05.123456Z").unwrap(), "2024-01-02T03:04:05Z");
        assert_eq!(rfc3339_seconds("2024-01-02T03:04:05+02:00").unwrap(), "2024-01-02T03:04:05+02:00");
        assert_eq!(rfc3339_seconds("2024-01-02T03:04:05.5+00:00").unwrap(), "2024-01-02T03:04:05Z");
        assert!(rfc3339_seconds("yesterday").is_err());
    }
}
