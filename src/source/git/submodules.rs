//! Flux's `recurseSubmodules`: each submodule of the checked-out commit is fetched at the
//! commit the superproject records and written into its path, recursively.
//!
//! - The URL comes from the commit's own `.gitmodules` (relative URLs such as `../lib.git`
//!   against the repository's URL, as git resolves them); a submodule commit without an
//!   entry there fails the fetch by name.
//! - Each submodule has its own object cache under the repository's, so a new superproject
//!   commit downloads only what the submodule's cache lacks.
//! - The Secret's credentials and TLS keys, and the proxy, are used for a submodule on the
//!   same scheme, host and port as the repository only: another host never sees them (Flux
//!   hands the same credentials to every submodule).
//! - A `file://` submodule is refused unless the repository itself is `file://` (a tenant's
//!   `.gitmodules` must not read the controller's disk), and so is any scheme other than
//!   http(s), ssh and file.
//! - Everything shares the fetch's one deadline and size limit.

use std::fs;
use std::path::Path;
use std::time::Instant;

use git2::{Oid, Repository, Tree};
use sha2::{Digest, Sha256};

use super::gateway::split_url;
use super::refs::GitReference;
use super::{FetchOutcome, GitError, GitSource, Result};

/// One `[submodule]` of `.gitmodules`: its path in the tree and its URL as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    path: String,
    url: String,
}

impl GitSource {
    /// Write each submodule in `gitlinks` (its path, its commit) into `dir`.
    pub(super) fn check_out_submodules(
        &self,
        repo: &Repository,
        tree: &Tree<'_>,
        dir: &Path,
        gitlinks: &[(String, Oid)],
        deadline: Instant,
    ) -> Result<()> {
        let modules = gitmodules(repo, tree).map_err(|detail| self.submodule_error(".gitmodules", detail))?;
        for (path, commit) in gitlinks {
            let Some(module) = modules.iter().find(|m| m.path.trim_matches('/') == path) else {
                return Err(self.submodule_error(path, "the commit has a submodule there but .gitmodules has no entry for it".into()));
            };
            let url = resolve_url(&self.url, &module.url).map_err(|detail| self.submodule_error(path, detail))?;
            let sub = self.submodule_source(&url, *commit)?;
            match sub.fetch_in(None, deadline).map_err(|e| self.submodule_error(path, e.to_string()))? {
                FetchOutcome::Fetched(checkout) => {
                    let target = dir.join(path);
                    fs::rename(checkout.path(), &target)
                        .map_err(|e| self.submodule_error(path, format!("cannot move its checkout into place: {e}")))?;
                }
                FetchOutcome::Unchanged { .. } => {}
            }
        }
        Ok(())
    }

    fn submodule_error(&self, path: &str, detail: String) -> GitError {
        GitError::Submodule { path: path.to_string(), url: self.display_url(), detail: self.scrub(&detail) }
    }

    /// The source of the submodule at `url`, pinned to `commit`.
    fn submodule_source(&self, url: &str, commit: Oid) -> Result<GitSource> {
        let parent_file = self.url.starts_with("file://");
        let scheme = url.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("http" | "https" | "ssh") => {}
            Some("file") if parent_file => {}
            Some("file") => {
                return Err(self.submodule_error(url, "a file:// submodule of a repository that is not file:// is refused".into()));
            }
            _ => return Err(self.submodule_error(url, "only http(s), ssh and file URLs are supported for submodules".into())),
        }
        let same_origin = origin(url).is_some() && origin(url) == origin(&self.url);
        let cache = self.cache_dir.join("modules").join(&hex::encode(Sha256::digest(url.as_bytes()))[..16]);
        let mut sub = self.clone();
        sub.url = url.to_string();
        sub.reference = GitReference::Commit { sha: commit.to_string(), branch: None };
        sub.cache_dir = cache;
        sub.sparse = Vec::new();
        sub.includes = Vec::new();
        if !same_origin {
            sub.auth = None;
            sub.proxy = None;
        }
        if sub.proxy.is_some() && !sub.is_http() {
            sub.proxy = None;
        }
        Ok(sub)
    }
}

/// `scheme://host:port` of a URL (without user info), for the same-origin rule.
fn origin(url: &str) -> Option<String> {
    let (scheme, _, authority, _) = split_url(url)?;
    Some(format!("{scheme}://{authority}"))
}

/// The `[submodule]` entries of the tree's `.gitmodules` (none without one).
fn gitmodules(repo: &Repository, tree: &Tree<'_>) -> std::result::Result<Vec<Module>, String> {
    let Ok(entry) = tree.get_path(Path::new(".gitmodules")) else { return Ok(Vec::new()) };
    let blob = repo.find_blob(entry.id()).map_err(|e| e.message().to_string())?;
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    fs::write(file.path(), blob.content()).map_err(|e| e.to_string())?;
    let config = git2::Config::open(file.path()).map_err(|e| format!("not readable: {}", e.message()))?;
    let mut paths = std::collections::BTreeMap::new();
    let mut urls = std::collections::BTreeMap::new();
    config
        .entries(Some(r"submodule\..*"))
        .and_then(|entries| {
            entries.for_each(|e| {
                let (Ok(name), Ok(value)) = (e.name(), e.value()) else { return };
                let Some(rest) = name.strip_prefix("submodule.") else { return };
                if let Some(module) = rest.strip_suffix(".path") {
                    paths.insert(module.to_string(), value.to_string());
                } else if let Some(module) = rest.strip_suffix(".url") {
                    urls.insert(module.to_string(), value.to_string());
                }
            })
        })
        .map_err(|e| format!("not readable: {}", e.message()))?;
    Ok(paths.into_iter().filter_map(|(name, path)| Some(Module { path, url: urls.get(&name)?.clone() })).collect())
}

/// A submodule URL as git resolves it: absolute as written, `./` and `../` against the
/// superproject's URL (each `../` drops one path segment).
fn resolve_url(parent: &str, url: &str) -> std::result::Result<String, String> {
    if !(url.starts_with("./") || url.starts_with("../")) {
        if url.contains("://") {
            return Ok(url.to_string());
        }
        return Err(format!("URL {url:?} is neither absolute (scheme://...) nor relative (./ or ../)"));
    }
    let Some((_, _, _, path)) = split_url(parent) else { return Err(format!("cannot resolve {url:?} against the repository's URL")) };
    let root_len = parent.len() - path.len();
    let mut segments: Vec<&str> = path.trim_end_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let mut rest = url;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("../") {
            if segments.pop().is_none() {
                return Err(format!("URL {url:?} goes above the repository's host"));
            }
            rest = r;
        } else {
            break;
        }
    }
    let mut out = parent[..root_len].to_string();
    for s in segments.iter().chain(rest.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().iter()) {
        out.push('/');
        out.push_str(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_against_the_repository_as_git_does() {
        assert_eq!(resolve_url("https://h/org/app.git", "../lib.git").as_deref(), Ok("https://h/org/lib.git"));
        assert_eq!(resolve_url("https://h/org/app.git", "./sub").as_deref(), Ok("https://h/org/app.git/sub"));
        assert_eq!(resolve_url("https://h/org/app.git/", "../../other/lib").as_deref(), Ok("https://h/other/lib"));
        assert_eq!(resolve_url("https://h/app.git", "ssh://git@x/lib.git").as_deref(), Ok("ssh://git@x/lib.git"));
        assert!(resolve_url("https://h/app.git", "../../../x").is_err());
        assert!(resolve_url("https://h/app.git", "lib.git").is_err());
    }

    #[test]
    fn origins_compare_scheme_host_and_port_without_user_info() {
        assert_eq!(origin("https://u:p@h:8443/a"), Some("https://h:8443".into()));
        assert_ne!(origin("https://h/a"), origin("https://other/a"));
        assert_ne!(origin("https://h/a"), origin("http://h/a"));
    }
}
