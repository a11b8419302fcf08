//! Flux's `sparseCheckout`: only the listed directories go into the artifact. Expressed as
//! gitignore patterns placed before the object's own `ignore`, so the artifact is built by
//! the one archiver with the one matcher, and its digest is that of exactly what it holds.

use std::collections::BTreeSet;

/// A directory of `sparseCheckout` that is not one: where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.sparseCheckout[{index}] {dir:?}: {reason}")]
pub struct SparseError {
    pub index: usize,
    pub dir: String,
    pub reason: String,
}

/// The directories, cleaned (`./a/b/` -> `a/b`), or why one is not a directory inside the
/// repository.
pub fn directories(dirs: &[String]) -> Result<Vec<String>, SparseError> {
    dirs.iter()
        .enumerate()
        .map(|(index, dir)| {
            let error = |reason: &str| SparseError { index, dir: dir.clone(), reason: reason.to_string() };
            let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
            if dir.starts_with('/') || parts.contains(&"..") {
                return Err(error("must be a directory inside the repository, relative to its root"));
            }
            if parts.is_empty() {
                return Err(error("names no directory; leave sparseCheckout out to keep the whole tree"));
            }
            if parts.iter().any(|p| p.contains(['*', '?', '[', '\\', '!', '#'])) {
                return Err(error("must be a directory path, not a pattern (patterns go in spec.ignore)"));
            }
            Ok(parts.join("/"))
        })
        .collect()
}

/// gitignore patterns that leave out everything but `dirs` (and the directories leading to
/// them): at each depth, the children of a directory on the way are excluded, then the next
/// step of each wanted path is let in again. A wanted directory inside another wanted one
/// adds nothing.
pub fn patterns(dirs: &[String]) -> String {
    let wanted: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    let covered = |path: &str| wanted.iter().any(|w| path == *w || path.starts_with(&format!("{w}/")));
    let depth = dirs.iter().map(|d| d.split('/').count()).max().unwrap_or(0);
    let mut lines = vec!["/*".to_string()];
    for level in 0..depth {
        // The directories of this depth on the way to a wanted one: their children go...
        let ancestors: BTreeSet<String> = dirs.iter().filter_map(|d| prefix(d, level)).filter(|p| !p.is_empty() && !covered(p)).collect();
        lines.extend(ancestors.iter().map(|a| format!("/{a}/*")));
        // ...and the next step of each wanted path comes back.
        let steps: BTreeSet<String> = dirs.iter().filter_map(|d| prefix(d, level + 1)).filter(|s| !parent_covered(s, &covered)).collect();
        lines.extend(steps.iter().map(|s| format!("!/{s}/")));
    }
    lines.join("\n")
}

/// The first `n` components of `path`, when it has that many.
fn prefix(path: &str, n: usize) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (parts.len() >= n).then(|| parts[..n].join("/"))
}

/// Whether a proper ancestor of `path` is wanted whole (then `path` needs no pattern).
fn parent_covered(path: &str, covered: &impl Fn(&str) -> bool) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).any(|n| covered(&parts[..n].join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(dirs: &[&str], path: &str) -> bool {
        let dirs = directories(&dirs.iter().map(|d| d.to_string()).collect::<Vec<_>>()).expect("dirs");
        let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
        for line in patterns(&dirs).lines() {
            builder.add_line(None, line).expect("pattern");
        }
        let matcher = builder.build().expect("matcher");
        !matcher.matched_path_or_any_parents(path, false).is_ignore()
    }

    #[test]
    fn only_the_listed_directories_are_kept() {
        let dirs = ["deploy/prod", "./infra/", "deploy/prod/extra", "docs/a/b"];
        for kept in ["deploy/prod/app.yaml", "deploy/prod/x/y.yaml", "infra/main.tf", "docs/a/b/c.md"] {
            assert!(keeps(&dirs, kept), "{kept}");
        }
        for left in ["README.md", "deploy/staging/app.yaml", "deploy/app.yaml", "docs/a/other.md", "docs/index.md", "infra2/x"] {
            assert!(!keeps(&dirs, left), "{left}");
        }
    }

    #[test]
    fn a_path_that_is_no_directory_of_the_repository_is_refused_by_index() {
        let bad = |d: &str| directories(&["ok".to_string(), d.to_string()]).expect_err(d);
        for d in ["/abs", "../up", "a/../../b", "", "./", "a/*", "!a"] {
            let e = bad(d);
            assert_eq!(e.index, 1, "{d}");
            assert!(e.to_string().starts_with("spec.sparseCheckout[1]"), "{e}");
        }
        assert_eq!(directories(&["./a//b/".to_string()]).expect("clean"), vec!["a/b".to_string()]);
    }
}
