//! The dotted field paths of `replacements` (kustomize's kyaml paths), e.g.
//! `spec.template.spec.containers.[name=app].env.[name=MODE].value`.
//!
//! A path splits on `.` (`\.` is a dot inside a key, and `[a.b]` a key with dots); each part
//! is a map key, a list index (`0`), a list element selector (`[name=app]`, or `[=value]` in
//! a list of scalars), or `*` (every element of a list). A list is entered only by an index,
//! a selector or `*`, never implicitly as in [`super::fieldspec`] paths.
//!
//! kustomize reads a source path and a target path with two different walkers, and so does
//! this module, because their differences show in a build's output:
//! - [`lookup`] (a source) finds one field: `[k=v]` is the first element whose `k` is `v`,
//!   `-` is the last element, `*` is an error.
//! - [`visit`] (targets) finds every field: `[k=v]` is an unanchored regular expression over
//!   `k` (so `[name=app]` also takes `app-sidecar`, as in kustomize), and, when asked, missing
//!   maps, lists, list elements and the field itself are created.

use regex::Regex;
use serde_json::{Map, Value};

use super::yaml::value_text;

/// Splits a field path into its parts, as kustomize's `SmarterPathSplitter` does.
pub(crate) fn split(path: &str) -> Vec<String> {
    let mut pieces: Vec<&str> = path.split('.').collect();
    // A leading dot is allowed (`.a.b`).
    if pieces.len() > 1 && pieces[0].is_empty() {
        pieces.remove(0);
    }
    let mut unescaped: Vec<String> = Vec::new();
    for piece in pieces {
        match unescaped.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('.');
                last.push_str(piece);
            }
            _ => unescaped.push(piece.to_string()),
        }
    }
    let mut parts = Vec::new();
    let mut iter = unescaped.into_iter();
    while let Some(part) = iter.next() {
        if part.starts_with('[') && !part.ends_with(']') {
            // A bracketed part with dots: `[name=a.b]` stays a selector, `[a.b]` is a key.
            let mut joined = part;
            for next in iter.by_ref() {
                joined.push('.');
                joined.push_str(&next);
                if next.ends_with(']') {
                    break;
                }
            }
            if joined.contains('=') {
                parts.push(joined);
            } else {
                parts.push(joined.trim_matches(['[', ']']).to_string());
            }
        } else {
            parts.push(part);
        }
    }
    parts
}

/// `[key=value]` as (key, value); `key` is empty for `[=value]`.
fn selector(part: &str) -> Option<Result<(&str, &str), String>> {
    let inner = part.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split_once('=').ok_or_else(|| format!("{part:?} must be [field=value] (or [=value] in a list of scalars)")))
}

/// A non-negative list index, as kyaml reads one.
fn index(part: &str) -> Option<usize> {
    part.parse::<i64>().ok().and_then(|i| usize::try_from(i).ok())
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "a map",
        Value::Array(_) => "a list",
        Value::Null => "null",
        _ => "a scalar",
    }
}

/// The elements of a list (none for null); anything else is not a list.
fn elements<'a>(node: &'a Value, part: &str) -> Result<&'a [Value], String> {
    match node {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        other => Err(format!("{part:?} needs a list, found {}", kind_name(other))),
    }
}

/// The one field `parts` leads to in `node` (a replacement's source), `None` when a part is
/// missing.
///
/// # Errors
/// A part meets a value of the wrong kind (a key on a list, an index on a map), an index is
/// negative, a selector is not `[field=value]`, or a part is `*`.
pub(crate) fn lookup<'a>(node: &'a Value, parts: &[String]) -> Result<Option<&'a Value>, String> {
    let mut cur = node;
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let next = if let Ok(i) = part.parse::<i64>() {
            let i = usize::try_from(i).map_err(|_| format!("list index {i} cannot be negative"))?;
            elements(cur, part)?.get(i)
        } else if part == "-" {
            elements(cur, part)?.last()
        } else if part == "*" {
            return Err("a wildcard (*) selects several fields; a source needs one (use an index or [field=value])".into());
        } else if let Some(sel) = selector(part) {
            let (key, value) = sel?;
            elements(cur, part)?
                .iter()
                .find(|e| if key.is_empty() { value_text(e) == value } else { e.get(key).is_some_and(|v| value_text(v) == value) })
        } else {
            match cur {
                Value::Object(map) => map.get(part),
                Value::Null => None,
                other => return Err(format!("{part:?} needs a map, found {}", kind_name(other))),
            }
        };
        match next {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// What a missing target field is created as: the kind of the value that will be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    Scalar,
    Map,
    List,
}

impl Create {
    pub fn like(value: &Value) -> Create {
        match value {
            Value::Object(_) => Create::Map,
            Value::Array(_) => Create::List,
            _ => Create::Scalar,
        }
    }
}

/// A new node for the part before `rest`: a list when the next part indexes or selects, the
/// created kind at the end of the path, a map otherwise. A created scalar is `null` until
/// it is set (the callback learns that it was created, so it takes the value's own type).
fn new_node(rest: &[String], create: Create) -> Value {
    match rest.first() {
        Some(next) if index(next).is_some() || selector(next).is_some() => Value::Array(Vec::new()),
        Some(_) => Value::Object(Map::new()),
        None => match create {
            Create::Scalar => Value::Null,
            Create::Map => Value::Object(Map::new()),
            Create::List => Value::Array(Vec::new()),
        },
    }
}

/// Calls `found` on every field `parts` leads to in `node` (a replacement's target), with
/// `true` when the walk created that field; returns how many it found. With `create`,
/// missing fields on the way are created, a list index one past the end appends an
/// element, and a selector that matches no element appends `{field: value}`.
///
/// # Errors
/// A part meets a value of the wrong kind, an index is past the end, a selector is not a
/// valid `[field=regex]`, or `found` fails.
pub(crate) fn visit(
    node: &mut Value,
    parts: &[String],
    create: Option<Create>,
    found: &mut dyn FnMut(&mut Value, bool) -> Result<(), String>,
) -> Result<usize, String> {
    walk(node, parts, create, false, found)
}

fn walk(
    node: &mut Value,
    parts: &[String],
    create: Option<Create>,
    created: bool,
    found: &mut dyn FnMut(&mut Value, bool) -> Result<(), String>,
) -> Result<usize, String> {
    let Some((part, rest)) = parts.split_first() else {
        found(node, created)?;
        return Ok(1);
    };
    let fresh = |rest: &[String]| create.map(|c| (new_node(rest, c), rest.is_empty() && c == Create::Scalar));
    if let Some(i) = index(part) {
        let mut none = Vec::new();
        let items = list(node, part, create.is_some())?.unwrap_or(&mut none);
        let mut made = false;
        if items.len() == i
            && let Some((elem, scalar)) = fresh(rest)
        {
            items.push(elem);
            made = scalar;
        }
        let len = items.len();
        let Some(item) = items.get_mut(i) else {
            return Err(format!("index {i} specified but only {len} elements found"));
        };
        return walk(item, rest, create, made, found);
    }
    if part == "*" {
        let mut n = 0;
        for item in list(node, part, false)?.into_iter().flatten() {
            n += walk(item, rest, create, false, found)?;
        }
        return Ok(n);
    }
    if let Some(sel) = selector(part) {
        let (key, pattern) = sel?;
        let re = Regex::new(pattern).map_err(|e| format!("{part:?}: {pattern:?} is not a valid regular expression: {e}"))?;
        let Some(items) = list(node, part, create.is_some())? else { return Ok(0) };
        let mut n = matching(items, key, &re, rest, create, found)?;
        if n == 0 && create.is_some() {
            let value = super::yaml::plain_scalar(pattern);
            items.push(if key.is_empty() {
                value
            } else {
                let mut m = Map::new();
                m.insert(key.to_string(), value);
                Value::Object(m)
            });
            n = matching(items, key, &re, rest, create, found)?;
            if n == 0 {
                return Err(format!("{part:?}: the element created for it does not match {pattern:?}"));
            }
        }
        return Ok(n);
    }
    if node.is_null() && create.is_some() {
        *node = Value::Object(Map::new());
    }
    match node {
        Value::Object(map) => {
            if !map.contains_key(part.as_str()) {
                let Some((elem, scalar)) = fresh(rest) else { return Ok(0) };
                map.insert(part.clone(), elem);
                let field = map.get_mut(part.as_str()).ok_or("a created field vanished")?;
                return walk(field, rest, create, scalar, found);
            }
            let field = map.get_mut(part.as_str()).ok_or("a field vanished")?;
            if field.is_null()
                && !rest.is_empty()
                && let Some((elem, _)) = fresh(rest)
            {
                *field = elem;
            }
            walk(field, rest, create, false, found)
        }
        Value::Null => Ok(0),
        other => Err(format!("{part:?} needs a map, found {}", kind_name(other))),
    }
}

/// The list at `node`: `None` for null (a missing list, nothing to visit), which becomes an
/// empty list when creating.
fn list<'a>(node: &'a mut Value, part: &str, creating: bool) -> Result<Option<&'a mut Vec<Value>>, String> {
    if node.is_null() {
        if !creating {
            return Ok(None);
        }
        *node = Value::Array(Vec::new());
    }
    let kind = kind_name(node);
    node.as_array_mut().map(Some).ok_or_else(|| format!("{part:?} needs a list, found {kind}"))
}

/// Walks the rest of the path in each element whose `key` (the element itself for an empty
/// key) matches `re`. An element of a list of scalars ends the walk there, as in kustomize.
fn matching(
    items: &mut [Value],
    key: &str,
    re: &Regex,
    rest: &[String],
    create: Option<Create>,
    found: &mut dyn FnMut(&mut Value, bool) -> Result<(), String>,
) -> Result<usize, String> {
    let mut n = 0;
    for item in items.iter_mut() {
        if key.is_empty() {
            if !item.is_object() && !item.is_array() && re.is_match(value_text(item).trim()) {
                found(item, false)?;
                n += 1;
            }
            continue;
        }
        let hit = item.get(key).is_some_and(|v| re.is_match(value_text(v).trim()));
        if hit {
            n += walk(item, rest, create, false, found)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(path: &str) -> Vec<String> {
        split(path)
    }

    #[test]
    fn paths_split_on_dots_but_not_inside_selectors_or_escapes() {
        assert_eq!(split("spec.containers.[name=app.v1].image"), ["spec", "containers", "[name=app.v1]", "image"]);
        assert_eq!(split("metadata.annotations.[example.com/x]"), ["metadata", "annotations", "example.com/x"]);
        assert_eq!(split("metadata.annotations.example\\.com/x"), ["metadata", "annotations", "example.com/x"]);
        assert_eq!(split(".a.b"), ["a", "b"]);
        assert_eq!(split("a.[=x]"), ["a", "[=x]"]);
    }

    #[test]
    fn lookup_finds_keys_indexes_selectors_and_the_last_element() {
        let obj =
            json!({"spec": {"containers": [{"name": "app", "image": "a"}, {"name": "app-sidecar", "image": "b"}], "args": ["x", "y"]}});
        assert_eq!(lookup(&obj, &parts("spec.containers.[name=app-sidecar].image")).unwrap(), Some(&json!("b")));
        assert_eq!(lookup(&obj, &parts("spec.containers.[name=app].image")).unwrap(), Some(&json!("a")), "exact, not a pattern");
        assert_eq!(lookup(&obj, &parts("spec.containers.1.image")).unwrap(), Some(&json!("b")));
        assert_eq!(lookup(&obj, &parts("spec.args.-")).unwrap(), Some(&json!("y")));
        assert_eq!(lookup(&obj, &parts("spec.args.[=x]")).unwrap(), Some(&json!("x")));
        assert_eq!(lookup(&obj, &parts("spec.missing.x")).unwrap(), None);
        assert_eq!(lookup(&obj, &parts("spec.containers.5")).unwrap(), None);
        assert!(lookup(&obj, &parts("spec.containers.*.image")).unwrap_err().contains("wildcard"));
        assert!(lookup(&obj, &parts("spec.containers.image")).unwrap_err().contains("needs a map, found a list"));
        assert!(lookup(&obj, &parts("spec.containers.-1")).unwrap_err().contains("negative"));
    }

    fn set_all(obj: &mut Value, path: &str, create: Option<Create>, to: &str) -> Result<(usize, Vec<bool>), String> {
        let mut created = Vec::new();
        let n = visit(obj, &parts(path), create, &mut |v, c| {
            created.push(c);
            *v = json!(to);
            Ok(())
        })?;
        Ok((n, created))
    }

    #[test]
    fn visit_selects_by_unanchored_pattern_and_wildcard() {
        let mut obj = json!({"c": [{"name": "app", "image": "a"}, {"name": "app-sidecar", "image": "b"}, {"name": "db", "image": "c"}]});
        assert_eq!(set_all(&mut obj, "c.[name=app].image", None, "x").unwrap().0, 2);
        assert_eq!(obj["c"][1]["image"], "x");
        assert_eq!(obj["c"][2]["image"], "c");
        assert_eq!(set_all(&mut obj, "c.[name=^db$].image", None, "y").unwrap().0, 1);
        assert_eq!(set_all(&mut obj, "c.*.image", None, "z").unwrap().0, 3);
        assert_eq!(set_all(&mut obj, "c.2.name", None, "w").unwrap().0, 1);
        assert_eq!(obj["c"][2], json!({"name": "w", "image": "z"}));
    }

    #[test]
    fn visit_finds_nothing_in_missing_fields_without_create() {
        let mut obj = json!({"spec": {"template": {}}});
        assert_eq!(set_all(&mut obj, "spec.template.metadata.labels.a", None, "x").unwrap().0, 0);
        assert_eq!(obj, json!({"spec": {"template": {}}}), "nothing written");
        assert!(set_all(&mut obj, "spec.template.*", None, "x").unwrap_err().contains("needs a list, found a map"));
        assert!(set_all(&mut obj, "spec.0", None, "x").unwrap_err().contains("needs a list"));
    }

    #[test]
    fn visit_creates_maps_lists_and_elements_when_asked() {
        let mut obj = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "app"}]}});
        let (n, created) = set_all(&mut obj, "metadata.annotations.a", Some(Create::Scalar), "v").unwrap();
        assert_eq!((n, created), (1, vec![true]));
        assert_eq!(obj["metadata"]["annotations"], json!({"a": "v"}));
        set_all(&mut obj, "spec.containers.[name=app].env.[name=MODE].value", Some(Create::Scalar), "on").unwrap();
        assert_eq!(obj["spec"]["containers"][0]["env"], json!([{"name": "MODE", "value": "on"}]));
        set_all(&mut obj, "spec.containers.[name=db].image", Some(Create::Scalar), "pg").unwrap();
        assert_eq!(obj["spec"]["containers"][1], json!({"name": "db", "image": "pg"}));
        set_all(&mut obj, "spec.args.0", Some(Create::Scalar), "a").unwrap();
        assert_eq!(obj["spec"]["args"], json!(["a"]));
        let (_, created) = set_all(&mut obj, "metadata.name", Some(Create::Scalar), "y").unwrap();
        assert_eq!(created, vec![false], "an existing field is not created");
        assert!(set_all(&mut obj, "spec.args.3", Some(Create::Scalar), "b").unwrap_err().contains("only 1 elements"));
    }
}
