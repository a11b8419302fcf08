//! Patch targets: which objects a `patches[].target` selects. Kind, name and namespace are
//! regular expressions over the whole value; label and annotation selectors use the
//! Kubernetes selector syntax (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`).

use regex::Regex;

use super::kustomization::Selector;
use super::resource::Resource;

/// A compiled target.
pub(crate) struct Target {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

#[derive(Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn anchored(pattern: &str) -> Result<Option<Regex>, String> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(&format!("^(?:{pattern})$")).map(Some).map_err(|e| format!("{pattern:?} is not a valid regular expression: {e}"))
}

impl Target {
    /// # Errors
    /// A pattern or a selector does not parse; the message says which.
    pub fn new(s: &Selector) -> Result<Target, String> {
        Ok(Target {
            group: anchored(&s.group)?,
            version: anchored(&s.version)?,
            kind: anchored(&s.kind)?,
            name: anchored(&s.name)?,
            namespace: anchored(&s.namespace)?,
            labels: parse_selector(&s.label_selector)?,
            annotations: parse_selector(&s.annotation_selector)?,
        })
    }

    /// Matches the original or the current name and namespace, the current kind.
    pub fn selects(&self, r: &Resource) -> bool {
        let (org, cur) = (r.org_id(), r.cur_id());
        let ok = |re: &Option<Regex>, a: &str, b: &str| re.as_ref().is_none_or(|re| re.is_match(a) || re.is_match(b));
        let gvk = r.gvk();
        ok(&self.namespace, org.effective_namespace(), cur.effective_namespace())
            && ok(&self.name, &org.name, &cur.name)
            && ok(&self.group, &gvk.group, &gvk.group)
            && ok(&self.version, &gvk.version, &gvk.version)
            && ok(&self.kind, &gvk.kind, &gvk.kind)
            && self.labels.iter().all(|req| req.holds(|k| r.label(k)))
            && self.annotations.iter().all(|req| req.holds(|k| r.annotation(k)))
    }
}

impl Requirement {
    fn holds<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        }
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for part in split_top(s) {
        let part = part.trim();
        let bad = || format!("selector {s:?}: cannot read {part:?}");
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
        };
        let req = if let Some(key) = part.strip_prefix('!') {
            Requirement::NotExists(key.trim().to_string())
        } else if let Some((k, v)) = part.split_once("!=") {
            Requirement::NotEquals(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement::Equals(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, rest)) = part.split_once(" notin ") {
            Requirement::NotIn(k.trim().to_string(), set(rest)?)
        } else if let Some((k, rest)) = part.split_once(" in ") {
            Requirement::In(k.trim().to_string(), set(rest)?)
        } else if !part.is_empty() && !part.contains([' ', '(', ')']) {
            Requirement::Exists(part.to_string())
        } else {
            return Err(bad());
        };
        out.push(req);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!(
            parse_selector("app=web, tier in (a, b),!canary,env notin (dev),x!=y").unwrap(),
            vec![
                Requirement::Equals("app".into(), "web".into()),
                Requirement::In("tier".into(), vec!["a".into(), "b".into()]),
                Requirement::NotExists("canary".into()),
                Requirement::NotIn("env".into(), vec!["dev".into()]),
                Requirement::NotEquals("x".into(), "y".into()),
            ]
        );
        assert!(parse_selector("a in b").is_err());
    }
}
