//! Ref resolution: which commit a spec's `ref` (branch, tag, semver range or commit) means,
//! worked out from the remote's advertised refs without downloading objects.
//!
//! This is what lets an unchanged revision cost one ref listing and nothing more. Semver
//! ranges are read as Flux (Masterminds semver) writes them and matched against the tags
//! leniently, as Flux does (a leading `v`, a missing minor or patch).

use std::collections::HashMap;
use std::fmt;

use git2::{Oid, Repository};

use super::fetch::{CallContext, Stage};
use super::{DEFAULT_BRANCH, GitError, GitSource, Resolved, Result};
use crate::api::GitRepositoryRef;
use crate::source::semver;

/// A refspec that matches nothing: connecting with it lists the remote's refs and downloads nothing.
const LIST_ONLY_REFSPEC: &str = "refs/driftless/list-only:refs/driftless/list-only";

/// Which revision to fetch, with Flux's precedence applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitReference {
    Branch(String),
    Tag(String),
    /// A semver range over the tags; the highest matching tag wins.
    Semver(String),
    /// A full reference name (`refs/pull/42/head`): Flux's `ref.name`.
    Name(String),
    /// A full commit SHA, optionally required to be on `branch`.
    Commit {
        sha: String,
        branch: Option<String>,
    },
}

impl GitReference {
    /// From a spec's `ref`: commit, then name, then semver, then tag, then branch (Flux's
    /// precedence); `master` when empty.
    pub fn from_spec(reference: Option<&GitRepositoryRef>) -> Result<Self> {
        let r = reference.cloned().unwrap_or_default();
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let Some(sha) = non_empty(r.commit) {
            let sha = sha.trim().to_ascii_lowercase();
            if Oid::from_str(&sha).is_err() || sha.len() != 40 {
                return Err(GitError::InvalidRef(format!("commit {sha:?} is not a full 40-hex SHA-1")));
            }
            return Ok(GitReference::Commit { sha, branch: non_empty(r.branch) });
        }
        if let Some(name) = non_empty(r.name) {
            let name = name.trim().to_string();
            return if is_reference_name(&name) {
                Ok(GitReference::Name(name))
            } else {
                Err(GitError::InvalidRef(format!(
                    "name {name:?} is not a full reference name (refs/heads/<branch>, refs/tags/<tag>, refs/pull/<n>/head, ...)"
                )))
            };
        }
        if let Some(range) = non_empty(r.semver) {
            semver::Range::parse(&range)?;
            return Ok(GitReference::Semver(range));
        }
        if let Some(tag) = non_empty(r.tag) {
            return Ok(GitReference::Tag(tag));
        }
        Ok(GitReference::Branch(non_empty(r.branch).unwrap_or_else(|| DEFAULT_BRANCH.to_string())))
    }
}

impl fmt::Display for GitReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitReference::Branch(b) => write!(f, "branch {b:?}"),
            GitReference::Tag(t) => write!(f, "tag {t:?}"),
            GitReference::Semver(r) => write!(f, "semver range {r:?}"),
            GitReference::Name(n) => write!(f, "reference {n:?}"),
            GitReference::Commit { sha, branch: None } => write!(f, "commit {sha}"),
            GitReference::Commit { sha, branch: Some(b) } => write!(f, "commit {sha} on branch {b:?}"),
        }
    }
}

impl GitSource {
    /// List the remote's refs and resolve the wanted revision, downloading no objects.
    /// (A bare commit pin is resolved without contacting the remote.)
    pub fn resolve(&self) -> Result<Resolved> {
        self.with_deadline(|this, deadline| {
            let repo = this.open_cache()?;
            let ctx = this.call_context(deadline)?;
            this.resolve_in(&repo, &ctx)
        })
    }

    pub(super) fn resolve_in(&self, repo: &Repository, ctx: &CallContext) -> Result<Resolved> {
        let url = self.display_url();
        let (refname, label) = match &self.reference {
            GitReference::Commit { sha, branch: None } => {
                let tip = Oid::from_str(sha).ok();
                return Ok(Resolved { refname: None, label: None, commit: Some(sha.clone()), tip });
            }
            GitReference::Branch(b) | GitReference::Commit { branch: Some(b), .. } => (format!("refs/heads/{b}"), b.clone()),
            GitReference::Tag(t) => (format!("refs/tags/{t}"), t.clone()),
            // Flux's revision of a named reference is `<name>@sha1:<commit>`.
            GitReference::Name(n) => (n.clone(), n.clone()),
            GitReference::Semver(range) => {
                let refs = self.list_remote(repo, ctx)?;
                let tag = highest_matching_tag(range, refs.keys().map(String::as_str))?
                    .ok_or_else(|| GitError::NoSemverMatch { range: range.clone(), url: url.clone() })?;
                return Ok(resolved_from(repo, &refs, format!("refs/tags/{tag}"), tag, &self.reference));
            }
        };
        let refs = self.list_remote(repo, ctx)?;
        if !refs.contains_key(&refname) {
            return Err(match &self.reference {
                GitReference::Tag(tag) => GitError::TagNotFound { tag: tag.clone(), url },
                GitReference::Name(name) => GitError::RefNotFound { name: name.clone(), url },
                _ => GitError::BranchNotFound { branch: label, url },
            });
        }
        Ok(resolved_from(repo, &refs, refname, label, &self.reference))
    }

    /// List the remote's refs: `(name, oid)`; annotated tags also appear as `name^{}` (peeled).
    fn list_remote(&self, repo: &Repository, ctx: &CallContext) -> Result<HashMap<String, Oid>> {
        let mut remote = repo.remote_anonymous(&ctx.remote_url).map_err(|e| self.map_error(e, ctx, Stage::Connect))?;
        let mut opts = self.fetch_options(ctx);
        remote.download(&[LIST_ONLY_REFSPEC], Some(&mut opts)).map_err(|e| self.map_error(e, ctx, Stage::Connect))?;
        let refs = remote
            .list()
            .map_err(|e| self.map_error(e, ctx, Stage::Connect))?
            .iter()
            .map(|head| (head.name().to_string(), head.oid()))
            .collect();
        let _ = remote.disconnect();
        Ok(refs)
    }

    /// `sha` when it is `tip` or an ancestor of it (so on the branch), once `tip` is fetched.
    pub(super) fn commit_on_branch(&self, repo: &Repository, sha: &str, branch: &str, tip: Oid) -> Result<Oid> {
        let oid = Oid::from_str(sha).map_err(|e| GitError::InvalidRef(e.message().to_string()))?;
        let not_on_branch = || GitError::CommitNotOnBranch { commit: sha.to_string(), branch: branch.to_string(), url: self.display_url() };
        if repo.find_commit(oid).is_err() {
            return Err(not_on_branch());
        }
        if tip == oid || repo.graph_descendant_of(tip, oid).unwrap_or(false) { Ok(oid) } else { Err(not_on_branch()) }
    }
}

fn resolved_from(repo: &Repository, refs: &HashMap<String, Oid>, refname: String, label: String, reference: &GitReference) -> Resolved {
    let advertised = refs.get(&refname).copied();
    let peeled = refs.get(&format!("{refname}^{{}}")).copied();
    let tip = match (peeled, advertised) {
        (Some(peeled), _) => Some(peeled),
        // A tag advertised without a peel: a lightweight tag (a commit) or an annotated tag
        // the server did not peel. The cache may know which; if not, the fetch will tell.
        (None, Some(oid)) if matches!(reference, GitReference::Tag(_) | GitReference::Semver(_)) => {
            repo.find_object(oid, None).and_then(|o| o.peel_to_commit()).ok().map(|c| c.id())
        }
        (None, advertised) => advertised,
    };
    let commit = match reference {
        GitReference::Commit { sha, .. } => Some(sha.clone()),
        _ => tip.map(|o| o.to_string()),
    };
    Resolved { refname: Some(refname), label: Some(label), commit, tip }
}

/// Whether `name` is a full reference name git accepts (`git check-ref-format`, in short):
/// under `refs/`, at least two components, none empty or starting with `.`, no `..`, no
/// control characters, spaces or any of `~^:?*[\\`, not ending in `.lock`, `/` or `.`.
fn is_reference_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("refs/") else { return false };
    !rest.is_empty()
        && rest.contains('/')
        && !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c))
        && name.split('/').all(|part| !part.is_empty() && !part.starts_with('.'))
}

/// The highest tag (name without `refs/tags/`) matching `range` among advertised ref names.
pub fn highest_matching_tag<'a>(range: &str, refnames: impl Iterator<Item = &'a str>) -> Result<Option<String>> {
    let range = semver::Range::parse(range)?;
    let tags = refnames.filter_map(|name| name.strip_prefix("refs/tags/")).filter(|tag| !tag.ends_with("^{}"));
    Ok(range.highest(tags).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| format!("refs/tags/{n}")).collect()
    }

    fn highest(range: &str, names: &[&str]) -> Option<String> {
        let refs = tags(names);
        highest_matching_tag(range, refs.iter().map(String::as_str)).expect("range")
    }

    #[test]
    fn semver_picks_the_highest_matching_tag_among_tag_refs_only() {
        let names = ["v1.0.0", "v1.10.0", "v2.0.0", "v1.11.0-rc.1", "latest"];
        assert_eq!(highest(">=1.0.0 <2.0.0", &names).as_deref(), Some("v1.10.0"));
        let refs = ["refs/heads/v9.0.0", "refs/tags/v1.0.0^{}", "refs/tags/v1.0.0"];
        assert_eq!(highest_matching_tag("*", refs.into_iter()).expect("range").as_deref(), Some("v1.0.0"));
        assert!(matches!(highest_matching_tag(">=", refs.into_iter()), Err(GitError::InvalidSemver { .. })));
    }

    #[test]
    fn ref_precedence_is_commit_name_semver_tag_branch() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let all = GitRepositoryRef {
            branch: Some("main".into()),
            tag: Some("v1".into()),
            semver: Some(">=1".into()),
            commit: Some(sha.into()),
            name: None,
        };
        assert_eq!(
            GitReference::from_spec(Some(&all)).expect("ref"),
            GitReference::Commit { sha: sha.into(), branch: Some("main".into()) }
        );
        let no_commit = GitRepositoryRef { commit: None, ..all.clone() };
        assert_eq!(GitReference::from_spec(Some(&no_commit)).expect("ref"), GitReference::Semver(">=1".into()));
        let tag = GitRepositoryRef { semver: None, ..no_commit.clone() };
        assert_eq!(GitReference::from_spec(Some(&tag)).expect("ref"), GitReference::Tag("v1".into()));
        assert_eq!(GitReference::from_spec(None).expect("ref"), GitReference::Branch("master".into()));
        let short = GitRepositoryRef { commit: Some("abc123".into()), ..Default::default() };
        assert!(matches!(GitReference::from_spec(Some(&short)), Err(GitError::InvalidRef(_))));
    }

    #[test]
    fn a_reference_name_wins_over_semver_tag_and_branch_but_not_a_commit() {
        let named = GitRepositoryRef {
            name: Some("refs/pull/42/head".into()),
            branch: Some("main".into()),
            tag: Some("v1".into()),
            semver: Some(">=1".into()),
            commit: None,
        };
        assert_eq!(GitReference::from_spec(Some(&named)).expect("ref"), GitReference::Name("refs/pull/42/head".into()));
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let pinned = GitRepositoryRef { commit: Some(sha.into()), ..named };
        assert!(matches!(GitReference::from_spec(Some(&pinned)).expect("ref"), GitReference::Commit { .. }));
        for bad in [
            "main",
            "refs/",
            "refs/heads",
            "refs/heads/a..b",
            "refs/heads/x.lock",
            "refs/heads/a b",
            "refs/heads/.hidden",
            "refs/heads/a:b",
        ] {
            let r = GitRepositoryRef { name: Some(bad.into()), ..Default::default() };
            assert!(matches!(GitReference::from_spec(Some(&r)), Err(GitError::InvalidRef(m)) if m.contains(bad)), "{bad}");
        }
        for good in ["refs/heads/main", "refs/tags/v1.0.0", "refs/merge-requests/1/head", "refs/heads/feature/x-1"] {
            let r = GitRepositoryRef { name: Some(good.into()), ..Default::default() };
            assert_eq!(GitReference::from_spec(Some(&r)).expect(good), GitReference::Name(good.into()));
        }
    }
}
