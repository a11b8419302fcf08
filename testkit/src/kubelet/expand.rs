//! Pure helpers the fake kubelet uses to turn a container spec into a local process:
//! `$(VAR)` expansion as the kubelet does it, and remapping of container paths (volume
//! mounts, working dir, termination message path) to directories on this machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Expands `$(NAME)` references the way the kubelet does for `env`, `command` and
/// `args`: a defined name is replaced, an undefined one is left as written, and `$$`
/// escapes a `$`.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        match vars.get(name) {
                            Some(value) => out.push_str(value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        i += close + 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        // Copy one UTF-8 character.
        let ch_len = input[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&input[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Maps absolute container paths to host paths, longest prefix first.
#[derive(Debug, Default, Clone)]
pub struct PathMap {
    entries: Vec<(String, PathBuf)>,
}

impl PathMap {
    /// Maps `container_path` (and everything under it) to `host_path`.
    pub fn insert(&mut self, container_path: &str, host_path: PathBuf) {
        let trimmed = container_path.trim_end_matches('/');
        let key = if trimmed.is_empty() { "/" } else { trimmed };
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_owned(), host_path));
        self.entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
    }

    /// The host path for a container path, if it lies under a mapped prefix.
    pub fn resolve(&self, container_path: &str) -> Option<PathBuf> {
        for (prefix, host) in &self.entries {
            if container_path == prefix {
                return Some(host.clone());
            }
            if let Some(rest) = container_path.strip_prefix(prefix.as_str())
                && let Some(rest) = rest.strip_prefix('/')
            {
                return Some(host.join(rest));
            }
        }
        None
    }

    /// Rewrites every mapped path inside `s` (an argument or an environment value): a
    /// mapped prefix counts where it starts the string or follows `=`, `:`, `,`, a quote or
    /// whitespace, and is followed by the end, `/`, or one of those separators. So
    /// `--out=/data/x`, `/data` and `A:/data:B` are rewritten; `/database` is not.
    pub fn rewrite(&self, s: &str) -> String {
        if self.entries.is_empty() {
            return s.to_owned();
        }
        let is_sep = |c: char| matches!(c, '=' | ':' | ',' | '"' | '\'' | ';') || c.is_whitespace();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        'outer: while i < s.len() {
            let at_boundary = i == 0 || s[..i].chars().next_back().is_some_and(is_sep);
            if at_boundary && s[i..].starts_with('/') {
                for (prefix, host) in &self.entries {
                    if prefix == "/" {
                        continue;
                    }
                    if let Some(rest) = s[i..].strip_prefix(prefix.as_str()) {
                        let ends_ok = rest.is_empty() || rest.starts_with('/') || rest.chars().next().is_some_and(is_sep);
                        if ends_ok {
                            out.push_str(&host.to_string_lossy());
                            i += prefix.len();
                            continue 'outer;
                        }
                    }
                }
            }
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + ch_len]);
            i += ch_len;
        }
        out
    }
}

/// Joins `rel` under `base`, refusing to escape it (`..` components and absolute parts are
/// dropped): volume item paths and subPaths come from the pod spec.
pub fn safe_join(base: &Path, rel: &str) -> PathBuf {
    let mut path = base.to_path_buf();
    for part in rel.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            continue;
        }
        path.push(part);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([("A".to_owned(), "1".to_owned()), ("B".to_owned(), "two".to_owned())])
    }

    #[test]
    fn defined_references_are_expanded_and_undefined_ones_kept() {
        assert_eq!(expand("x$(A)y$(B)z$(C)", &vars()), "x1ytwoz$(C)");
    }

    #[test]
    fn double_dollar_escapes_a_reference() {
        assert_eq!(expand("$$(A) $$ $", &vars()), "$(A) $ $");
        assert_eq!(expand("$(A", &vars()), "$(A");
    }

    #[test]
    fn mapped_paths_are_rewritten_only_at_boundaries() {
        let mut map = PathMap::default();
        map.insert("/data", PathBuf::from("/tmp/pod/vol"));
        map.insert("/data/sub", PathBuf::from("/tmp/pod/sub"));
        assert_eq!(map.rewrite("/data"), "/tmp/pod/vol");
        assert_eq!(map.rewrite("--out=/data/x"), "--out=/tmp/pod/vol/x");
        assert_eq!(map.rewrite("/data/sub/y"), "/tmp/pod/sub/y");
        assert_eq!(map.rewrite("/database"), "/database");
        assert_eq!(map.rewrite("a /data b"), "a /tmp/pod/vol b");
        assert_eq!(map.resolve("/data/sub/z"), Some(PathBuf::from("/tmp/pod/sub/z")));
        assert_eq!(map.resolve("/other"), None);
    }

    #[test]
    fn joined_paths_never_escape_their_base() {
        assert_eq!(safe_join(Path::new("/b"), "../../etc/passwd"), PathBuf::from("/b/etc/passwd"));
        assert_eq!(safe_join(Path::new("/b"), "a/./c"), PathBuf::from("/b/a/c"));
    }
}
