//! What a cluster owner lets tenants' objects do: the lockdown flags of the controller
//! (Flux's multi-tenancy lockdown), as one value every check reads. A local store belongs to
//! one person and allows everything.

/// The cluster owner's rules for what objects may refer to and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenancy {
    /// Objects may refer to objects of other namespaces (`sourceRef`, `dependsOn`,
    /// `healthChecks`, an Alert's `eventSources`, a Receiver's `resources`). Turned off by
    /// `--no-cross-namespace-refs` (what `driftless install` sets), so tenant B's runner never
    /// downloads tenant A's artifact.
    pub cross_namespace_refs: bool,
    /// `file://` Git URLs, which read the controller's own disk (`--allow-file-urls`).
    pub file_urls: bool,
    /// A Bucket without `secretRef` may use the controller's own cloud credentials
    /// (`--allow-ambient-credentials`); else it reads the bucket anonymously.
    pub ambient_credentials: bool,
}

impl Tenancy {
    /// A local store: one user, every reference allowed.
    pub const LOCAL: Tenancy = Tenancy { cross_namespace_refs: true, file_urls: true, ambient_credentials: true };
}

/// The first of `refs` (field, namespace it names) outside `own`, when cross-namespace
/// references are refused: the message names the field and both namespaces.
pub fn cross_namespace_refusal<'a>(
    tenancy: &Tenancy,
    own: &str,
    refs: impl IntoIterator<Item = (String, Option<&'a str>)>,
) -> Option<String> {
    if tenancy.cross_namespace_refs {
        return None;
    }
    refs.into_iter().find_map(|(field, namespace)| {
        let other = namespace.filter(|ns| *ns != own)?;
        Some(format!(
            "{field} names namespace {other}: cross-namespace references are not allowed on this cluster (--no-cross-namespace-refs); refer to an object of namespace {own}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKED: Tenancy = Tenancy { cross_namespace_refs: false, file_urls: false, ambient_credentials: false };

    #[test]
    fn a_reference_to_another_namespace_is_refused_only_when_locked_down() {
        let refs = || vec![("spec.sourceRef".to_string(), None), ("spec.dependsOn[1]".to_string(), Some("team-a"))];
        let refused = cross_namespace_refusal(&LOCKED, "team-b", refs()).unwrap();
        assert!(refused.contains("spec.dependsOn[1]") && refused.contains("team-a") && refused.contains("team-b"), "{refused}");
        assert_eq!(cross_namespace_refusal(&Tenancy::LOCAL, "team-b", refs()), None);
        assert_eq!(cross_namespace_refusal(&LOCKED, "team-a", refs()), None, "its own namespace, named, is fine");
    }
}
