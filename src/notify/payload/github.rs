//! The `github` payload: a commit status, posted to the repository's statuses API, on the
//! commit of the event's revision.
//!
//! The address is the repository's URL (https, ssh or scp-like), not an API URL, so the
//! API base (github.com or a GitHub Enterprise host) is derived from it here. An event whose
//! revision names no Git commit (a Bucket's digest, no revision at all) has nothing to
//! report on and is skipped, not refused.

use hyper::Uri;
use serde_json::{Value, json};

use super::{Draft, Endpoint, Notification, PayloadError, REPORTING_CONTROLLER, encode, token, truncate};

/// GitHub refuses longer commit status descriptions.
const GITHUB_DESCRIPTION_LIMIT: usize = 140;

pub(super) fn draft(endpoint: &Endpoint, n: &Notification) -> Result<Draft, PayloadError> {
    let token = token(endpoint, "an API token that may write commit statuses")?;
    let repository = github_repository(&endpoint.address)?;
    let Some(sha) = n.event.revision.as_deref().and_then(commit_sha) else {
        return Ok(Draft::Skip(format!(
            "{} has no Git commit revision ({}); a GitHub commit status needs one",
            n.object(),
            n.event.revision.as_deref().unwrap_or("none")
        )));
    };
    let url = format!("{}/repos/{}/{}/statuses/{sha}", repository.api, repository.owner, repository.repo);
    let auth = vec![
        ("Authorization".to_string(), format!("Bearer {token}")),
        ("Accept".to_string(), "application/vnd.github+json".to_string()),
        ("X-GitHub-Api-Version".to_string(), "2022-11-28".to_string()),
    ];
    Ok(Draft::Send { url, body: encode(endpoint.kind, &github_status(n))?, auth })
}

struct GitHubRepository {
    /// `https://api.github.com`, or `<scheme>://<host>/api/v3` for GitHub Enterprise.
    api: String,
    owner: String,
    repo: String,
}

/// The API base and `owner/repo` of a repository URL: `https://host/owner/repo[.git]`,
/// `ssh://git@host/owner/repo.git` or `git@host:owner/repo.git` (SSH forms map to https).
fn github_repository(address: &str) -> Result<GitHubRepository, PayloadError> {
    let bad = |problem| PayloadError::GitHubRepository { problem };
    let address = address.trim();
    if address.is_empty() {
        return Err(bad("it is empty"));
    }
    let (scheme, host, path) = if let Some(rest) = address.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("it names no repository"))?;
        let host = authority.split(':').next().unwrap_or_default();
        ("https".to_string(), host.to_string(), path.to_string())
    } else if !address.contains("://") {
        // scp-like: git@github.com:owner/repo.git
        let rest = address.split_once('@').map_or(address, |(_, r)| r);
        let (host, path) = rest.split_once(':').ok_or_else(|| bad("it is neither a URL nor user@host:owner/repo"))?;
        ("https".to_string(), host.to_string(), path.to_string())
    } else {
        let uri: Uri = address.parse().map_err(|_| bad("it does not parse as a URL"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            _ => return Err(bad("its scheme must be https, http or ssh")),
        };
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("it carries credentials before the host; put the token in the Secret"));
        }
        let host = match authority.port_u16() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_string(),
        };
        (scheme, host, uri.path().to_string())
    };
    if host.is_empty() {
        return Err(bad("it has no host"));
    }
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.split('/');
    let (Some(owner), Some(repo), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("its path is not exactly <owner>/<repo>"));
    };
    let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok(owner) || !name_ok(repo) {
        return Err(bad("owner and repository names are letters, digits, `-`, `_` and `.`"));
    }
    let api = if host.eq_ignore_ascii_case("github.com") || host.eq_ignore_ascii_case("www.github.com") {
        "https://api.github.com".to_string()
    } else {
        format!("{scheme}://{host}/api/v3")
    };
    Ok(GitHubRepository { api, owner: owner.to_string(), repo: repo.to_string() })
}

/// The commit of a Git revision: `<ref>@sha1:<sha>`, `sha1:<sha>`, a bare 40-hex sha, or
/// the older `<branch>/<sha>`. `None` for anything else (e.g. a Bucket's `sha256:` digest).
pub fn commit_sha(revision: &str) -> Option<String> {
    let revision = revision.trim();
    let candidate = match revision.rsplit_once('@') {
        Some((_, hash)) => hash.strip_prefix("sha1:")?,
        None => match revision.strip_prefix("sha1:") {
            Some(hash) => hash,
            None => revision.rsplit_once('/').map_or(revision, |(_, hash)| hash),
        },
    };
    (candidate.len() == 40 && candidate.chars().all(|c| c.is_ascii_hexdigit())).then(|| candidate.to_ascii_lowercase())
}

/// `pending` while a plan waits or work is under way, `failure` for errors, else `success`.
fn github_state(n: &Notification) -> &'static str {
    use crate::api::reason;
    if n.event.reason == reason::PLAN_PENDING || n.event.reason == reason::PROGRESSING {
        "pending"
    } else if n.is_error() {
        "failure"
    } else {
        "success"
    }
}

fn github_status(n: &Notification) -> Value {
    let e = &n.event;
    let first_line = e.message.lines().next().unwrap_or_default();
    let description = if first_line.is_empty() { e.reason.as_str() } else { first_line };
    let mut status = json!({
        "state": github_state(n),
        // The namespace too: two objects of one name in two namespaces, reconciling the same
        // commit, must not overwrite each other's status.
        "context": format!("{REPORTING_CONTROLLER}/{}/{}/{}", e.kind.to_ascii_lowercase(), e.namespace, e.name),
        "description": truncate(description, GITHUB_DESCRIPTION_LIMIT),
    });
    if let Some(url) = &n.review_url {
        status["target_url"] = json!(url);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::super::ProviderKind;
    use super::super::tests::{SHA, body, event, send};
    use super::*;
    use crate::store::Severity;

    #[test]
    fn commit_sha_reads_flux_revisions_and_nothing_else() {
        assert_eq!(commit_sha(&format!("main@sha1:{SHA}")).as_deref(), Some(SHA));
        assert_eq!(commit_sha(&format!("refs/tags/v1.0@sha1:{SHA}")).as_deref(), Some(SHA));
        assert_eq!(commit_sha(&format!("sha1:{SHA}")).as_deref(), Some(SHA));
        assert_eq!(commit_sha(SHA).as_deref(), Some(SHA));
        assert_eq!(commit_sha(&format!("main/{}", SHA.to_uppercase())).as_deref(), Some(SHA));
        assert_eq!(commit_sha("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), None);
        assert_eq!(commit_sha("main@sha1:abc"), None);
        assert_eq!(commit_sha("main"), None);
    }

    #[test]
    fn github_addresses_give_the_api_base_and_repository() {
        let r = github_repository("https://github.com/acme/infra.git").unwrap();
        assert_eq!((r.api.as_str(), r.owner.as_str(), r.repo.as_str()), ("https://api.github.com", "acme", "infra"));
        let r = github_repository("https://git.example.com:8443/acme/infra/").unwrap();
        assert_eq!(r.api, "https://git.example.com:8443/api/v3");
        let r = github_repository("ssh://git@git.example.com:22/acme/infra.git").unwrap();
        assert_eq!((r.api.as_str(), r.repo.as_str()), ("https://git.example.com/api/v3", "infra"));
        let r = github_repository("git@github.com:acme/infra.git").unwrap();
        assert_eq!((r.api.as_str(), r.owner.as_str()), ("https://api.github.com", "acme"));
        assert!(github_repository("https://github.com/acme").is_err());
        assert!(github_repository("https://github.com/acme/infra/tree/main").is_err());
        assert!(github_repository("https://github.com/acme/in%2Ffra").is_err());
    }

    #[test]
    fn github_description_is_cut_to_140_characters() {
        let mut n = Notification::new(event(Severity::Info, "PlanApplied", Some(SHA)));
        n.event.message = "é".repeat(300);
        let mut endpoint = Endpoint::new(ProviderKind::GitHub, "https://github.com/acme/infra");
        endpoint.token = Some("t".into());
        let b = body(&send(&endpoint, &n));
        assert_eq!(b["description"].as_str().unwrap().chars().count(), 140);
        assert_eq!(b["context"], "driftless/terraform/infra/network");
    }
}
