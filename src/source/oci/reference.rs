//! What an OCIRepository names: the repository of its `oci://` URL, the tag or digest its
//! `ref` selects (Flux's precedence), and the revision Flux writes for the result. Pure.

use crate::api::OciRepositoryRef;
use crate::source::semver;

use super::OciError;

/// The tag Flux pulls when `ref` is unset.
pub const DEFAULT_TAG: &str = "latest";

/// A repository in a registry: `oci://<registry>/<repository>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `host[:port]`.
    pub registry: String,
    /// The path below the registry, e.g. `org/manifests/app`.
    pub name: String,
}

impl Repository {
    /// Reads `oci://host[:port]/path`. A tag or digest in the URL is refused, as Flux does:
    /// the `ref` selects those.
    ///
    /// # Errors
    /// `InvalidUrl` saying what is wrong.
    pub fn parse(url: &str) -> Result<Self, OciError> {
        let (repository, reference) = split(url)?;
        if let Some(reference) = reference {
            return Err(OciError::InvalidUrl(format!(
                "{url:?} names {reference:?}; spec.url is the repository alone, select the tag or digest with spec.ref"
            )));
        }
        Ok(repository)
    }

    /// `oci://registry/name`.
    pub fn url(&self) -> String {
        format!("oci://{}/{}", self.registry, self.name)
    }
}

/// `oci://host/path[:tag|@digest]` as the push and pull commands take it: the repository
/// and the tag or digest (`None` when neither is given).
///
/// # Errors
/// `InvalidUrl` saying what is wrong.
pub fn split(url: &str) -> Result<(Repository, Option<String>), OciError> {
    let invalid = |why: &str| OciError::InvalidUrl(format!("{url:?} {why}"));
    let rest = url.strip_prefix("oci://").ok_or_else(|| invalid("does not start with oci://"))?;
    let (registry, path) = rest.split_once('/').ok_or_else(|| invalid("names no repository (oci://<host>/<repository>)"))?;
    if registry.is_empty() || registry.contains(['@', '?', '#']) {
        return Err(invalid("has no valid registry host"));
    }
    let (path, reference) = if let Some((path, digest)) = path.split_once('@') {
        if !super::is_digest(digest) {
            return Err(invalid("has a digest that is not sha256:<64 hex digits>"));
        }
        (path, Some(digest.to_string()))
    } else {
        match path.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => {
                if !is_tag(tag) {
                    return Err(invalid("has an invalid tag (up to 128 of [A-Za-z0-9_.-], not starting with . or -)"));
                }
                (path, Some(tag.to_string()))
            }
            _ => (path, None),
        }
    };
    let path = path.trim_end_matches('/');
    if path.is_empty() || !path.split('/').all(is_path_component) {
        return Err(invalid("has an invalid repository path (lowercase letters, digits and separators . _ __ - /)"));
    }
    Ok((Repository { registry: registry.to_ascii_lowercase(), name: path.to_string() }, reference))
}

/// The distribution spec's tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.first().is_none_or(|b| !alnum(b)) || bytes.last().is_none_or(|b| !alnum(b)) {
        return false;
    }
    bytes.iter().all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-')) && !part.contains("..") && !part.contains("___")
}

/// Which artifact of the repository to pull, with Flux's precedence applied.
#[derive(Debug, Clone)]
pub enum Selector {
    Tag(String),
    /// The highest tag in the range, among the tags `filter` (a regular expression) matches.
    Semver {
        range: String,
        parsed: semver::Range,
        filter: Option<regex::Regex>,
    },
    /// `sha256:<hex>`: pinned, never moves.
    Digest(String),
}

impl Selector {
    /// From a spec's `ref`: digest, then semver, then tag, then `latest` (Flux's precedence:
    /// the later-listed fields win over the earlier).
    ///
    /// # Errors
    /// `InvalidRef` naming the field: a digest that is not `sha256:<hex>`, a range or a
    /// filter that does not parse, a tag outside the tag grammar.
    pub fn from_spec(reference: Option<&OciRepositoryRef>) -> Result<Self, OciError> {
        let r = reference.cloned().unwrap_or_default();
        let non_empty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(digest) = non_empty(r.digest) {
            let lower = digest.to_ascii_lowercase();
            if !super::is_digest(&lower) {
                return Err(OciError::InvalidRef(format!("ref.digest {digest:?} is not sha256:<64 hex digits>")));
            }
            return Ok(Selector::Digest(lower));
        }
        if let Some(range) = non_empty(r.semver) {
            let parsed = semver::Range::parse(&range).map_err(|e| OciError::InvalidRef(format!("ref.semver: {e}")))?;
            let filter = match non_empty(r.semver_filter) {
                None => None,
                Some(f) => Some(
                    regex::Regex::new(&f)
                        .map_err(|e| OciError::InvalidRef(format!("ref.semverFilter {f:?} is not a regular expression: {e}")))?,
                ),
            };
            return Ok(Selector::Semver { range, parsed, filter });
        }
        let tag = non_empty(r.tag).unwrap_or_else(|| DEFAULT_TAG.to_string());
        if !is_tag(&tag) {
            return Err(OciError::InvalidRef(format!("ref.tag {tag:?} is not a valid tag (up to 128 of [A-Za-z0-9_.-])")));
        }
        Ok(Selector::Tag(tag))
    }

    /// Whether resolving needs the repository's tag list.
    pub fn needs_tags(&self) -> bool {
        matches!(self, Selector::Semver { .. })
    }

    /// The tag (or digest) to ask the registry for; for a range, the highest of `tags` in it.
    ///
    /// # Errors
    /// `NoSemverMatch` when no tag is in the range.
    pub fn pick(&self, repository: &Repository, tags: &[String]) -> Result<String, OciError> {
        match self {
            Selector::Tag(t) => Ok(t.clone()),
            Selector::Digest(d) => Ok(d.clone()),
            Selector::Semver { range, parsed, filter } => {
                let candidates = tags.iter().map(String::as_str).filter(|t| filter.as_ref().is_none_or(|f| f.is_match(t)));
                parsed.highest(candidates).map(str::to_string).ok_or_else(|| OciError::NoSemverMatch {
                    range: range.clone(),
                    url: repository.url(),
                    filtered: filter.is_some(),
                })
            }
        }
    }
}

/// Flux's revision of a pulled artifact: `<tag>@sha256:<hex>`, or the digest alone when the
/// ref pinned one.
pub fn revision(picked: &str, digest: &str) -> String {
    if picked.starts_with("sha256:") { digest.to_string() } else { format!("{picked}@{digest}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn sel(tag: Option<&str>, semver: Option<&str>, filter: Option<&str>, digest: Option<&str>) -> Result<Selector, OciError> {
        Selector::from_spec(Some(&OciRepositoryRef {
            tag: tag.map(Into::into),
            semver: semver.map(Into::into),
            semver_filter: filter.map(Into::into),
            digest: digest.map(Into::into),
        }))
    }

    #[test]
    fn urls_name_a_repository_and_never_a_tag() {
        let r = Repository::parse("oci://127.0.0.1:5000/org/manifests/app").expect("url");
        assert_eq!((r.registry.as_str(), r.name.as_str()), ("127.0.0.1:5000", "org/manifests/app"));
        assert_eq!(r.url(), "oci://127.0.0.1:5000/org/manifests/app");
        for bad in ["https://host/app", "oci://host", "oci://host/", "oci://host/App", "oci://host/a//b"] {
            assert!(matches!(Repository::parse(bad), Err(OciError::InvalidUrl(m)) if m.contains(bad)), "{bad}");
        }
        let err = Repository::parse("oci://host/app:v1").expect_err("tag").to_string();
        assert!(err.contains("spec.ref"), "{err}");
        let (repo, reference) = split(&format!("oci://host:5000/app@{DIGEST}")).expect("digest");
        assert_eq!((repo.name.as_str(), reference.as_deref()), ("app", Some(DIGEST)));
        let (repo, reference) = split("oci://host:5000/app:v1.0.0").expect("tag");
        assert_eq!((repo.registry.as_str(), reference.as_deref()), ("host:5000", Some("v1.0.0")));
        assert_eq!(split("oci://host:5000/org/app").expect("bare").1, None);
    }

    #[test]
    fn digest_wins_over_semver_which_wins_over_tag() {
        assert!(matches!(sel(Some("v1"), Some(">=1"), None, Some(DIGEST)).unwrap(), Selector::Digest(d) if d == DIGEST));
        assert!(matches!(sel(Some("v1"), Some(">=1"), None, None).unwrap(), Selector::Semver { .. }));
        assert!(matches!(sel(Some("v1"), None, None, None).unwrap(), Selector::Tag(t) if t == "v1"));
        assert!(matches!(Selector::from_spec(None).unwrap(), Selector::Tag(t) if t == "latest"));
        assert!(matches!(sel(None, None, Some("^v"), None).unwrap(), Selector::Tag(t) if t == "latest"), "a filter alone selects nothing");
    }

    #[test]
    fn bad_refs_are_named() {
        for (r, field) in [
            (sel(None, None, None, Some("sha256:abc")), "ref.digest"),
            (sel(None, Some(">="), None, None), "ref.semver"),
            (sel(None, Some(">=1"), Some("("), None), "ref.semverFilter"),
            (sel(Some("-bad"), None, None, None), "ref.tag"),
        ] {
            assert!(matches!(r, Err(OciError::InvalidRef(m)) if m.contains(field)), "{field}");
        }
    }

    #[test]
    fn semver_picks_the_highest_tag_the_filter_lets_through() {
        let repo = Repository::parse("oci://h/app").unwrap();
        let tags: Vec<String> = ["1.0.0", "1.1.0", "1.2.0-rc.1", "v2.0.0", "latest"].map(String::from).to_vec();
        assert_eq!(sel(None, Some("1.x"), None, None).unwrap().pick(&repo, &tags).unwrap(), "1.1.0");
        assert_eq!(sel(None, Some(">=1.0.0-0"), Some("-rc"), None).unwrap().pick(&repo, &tags).unwrap(), "1.2.0-rc.1");
        assert_eq!(sel(None, Some("*"), None, None).unwrap().pick(&repo, &tags).unwrap(), "v2.0.0");
        let none = sel(None, Some(">=3"), None, None).unwrap().pick(&repo, &tags).expect_err("no match").to_string();
        assert!(none.contains(">=3") && none.contains("oci://h/app"), "{none}");
    }

    #[test]
    fn the_revision_is_flux_s() {
        assert_eq!(revision("v1", DIGEST), format!("v1@{DIGEST}"));
        assert_eq!(revision(DIGEST, DIGEST), DIGEST);
    }
}
