//! What a cluster owner lets tenants' objects do: the lockdown flags of the controller
//! (Flux's multi-tenancy lockdown), as one value every check reads. A local store belongs to
//! one person and allows everything.

/// The cluster owner's rules for what objects may refer to and use.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The ServiceAccounts a Terraform may name as its runner's `spec.serviceAccountName`
    /// (`--allowed-runner-service-accounts`); `None`: any of its namespace. A runner pod acts
    /// with its ServiceAccount's rights, so naming one is using those rights: without a list
    /// whoever may create a Terraform may use every ServiceAccount of the namespace.
    pub runner_service_accounts: Option<std::sync::Arc<[String]>>,
}

impl Tenancy {
    /// A local store: one user, every reference allowed.
    pub const LOCAL: Tenancy =
        Tenancy { cross_namespace_refs: true, file_urls: true, ambient_credentials: true, runner_service_accounts: None };

    /// Why `account`, the runner ServiceAccount an object names, is refused, if it is.
    pub fn runner_account_refusal(&self, account: Option<&str>) -> Option<String> {
        let (Some(allowed), Some(account)) = (&self.runner_service_accounts, account) else { return None };
        if allowed.iter().any(|a| a == account) {
            return None;
        }
        Some(format!(
            "spec.serviceAccountName {account:?} is not a runner ServiceAccount this cluster allows (--allowed-runner-service-accounts: {}); name one of those or leave it unset",
            allowed.join(", ")
        ))
    }
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

    const LOCKED: Tenancy =
        Tenancy { cross_namespace_refs: false, file_urls: false, ambient_credentials: false, runner_service_accounts: None };

    #[test]
    fn runner_service_accounts_outside_the_allowed_list_are_refused_by_name() {
        let listed =
            Tenancy { runner_service_accounts: Some(vec!["tf-runner".to_string(), "driftless-runner".to_string()].into()), ..LOCKED };
        let refused = listed.runner_account_refusal(Some("admin")).unwrap();
        assert!(refused.contains("\"admin\"") && refused.contains("tf-runner, driftless-runner"), "{refused}");
        assert_eq!(listed.runner_account_refusal(Some("tf-runner")), None);
        assert_eq!(listed.runner_account_refusal(None), None, "unset: the controller's default runner account");
        assert_eq!(LOCKED.runner_account_refusal(Some("admin")), None, "no list: any account of the namespace");
    }

    #[test]
    fn a_reference_to_another_namespace_is_refused_only_when_locked_down() {
        let refs = || vec![("spec.sourceRef".to_string(), None), ("spec.dependsOn[1]".to_string(), Some("team-a"))];
        let refused = cross_namespace_refusal(&LOCKED, "team-b", refs()).unwrap();
        assert!(refused.contains("spec.dependsOn[1]") && refused.contains("team-a") && refused.contains("team-b"), "{refused}");
        assert_eq!(cross_namespace_refusal(&Tenancy::LOCAL, "team-b", refs()), None);
        assert_eq!(cross_namespace_refusal(&LOCKED, "team-a", refs()), None, "its own namespace, named, is fine");
    }
}
