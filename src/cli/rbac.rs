//! The rights of driftless's service accounts, as one table: `install` renders it into
//! (Cluster)Roles and `check` asks the API server, right by right, whether each is held.
//! Keeping one table means the two cannot disagree.

use k8s_openapi::api::rbac::v1::PolicyRule;

/// Some verbs on some resources of one API group (`""` is the core group). A resource may
/// name a subresource (`terraforms/status`), as in a `PolicyRule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Right {
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

/// One verb on one (sub)resource: what a SubjectAccessReview asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub verb: &'static str,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if let Some(sub) = self.subresource {
            write!(f, "/{sub}")?;
        }
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        Ok(())
    }
}

const GROUP: &str = crate::api::GROUP;

/// The controller's rights in every namespace (a ClusterRole): it watches driftless
/// objects wherever they are, writes their status and finalizers, reads the Secrets and
/// ConfigMaps they reference, writes outputs, state and plan Secrets, starts runner pods
/// and records events. No delete on driftless objects (users own them), no rights on
/// RBAC, namespaces or workloads other than pods.
pub const CONTROLLER: &[Right] = &[
    Right {
        group: GROUP,
        resources: &["gitrepositories", "buckets", "ocirepositories", "helmrepositories", "helmcharts", "terraforms", "kustomizations"],
        verbs: &["get", "list", "watch", "patch", "update"],
    },
    Right {
        group: GROUP,
        resources: &[
            "gitrepositories/status",
            "buckets/status",
            "ocirepositories/status",
            "helmrepositories/status",
            "helmcharts/status",
            "terraforms/status",
            "kustomizations/status",
        ],
        verbs: &["get", "patch", "update"],
    },
    Right {
        group: GROUP,
        resources: &[
            "gitrepositories/finalizers",
            "buckets/finalizers",
            "ocirepositories/finalizers",
            "helmrepositories/finalizers",
            "helmcharts/finalizers",
            "terraforms/finalizers",
            "kustomizations/finalizers",
        ],
        verbs: &["update"],
    },
    // Reading what objects reference (variables, credentials) anywhere; writing Secrets and
    // starting pods only where runners run (RUNS, per runner namespace).
    Right { group: "", resources: &["secrets"], verbs: &["get", "list", "watch"] },
    Right { group: "", resources: &["configmaps"], verbs: &["get", "list", "watch"] },
    Right { group: "", resources: &["pods"], verbs: &["get", "list", "watch"] },
    // get: a runner's account; impersonate: a Kustomization's spec.serviceAccountName applies as it.
    Right { group: "", resources: &["serviceaccounts"], verbs: &["get", "impersonate"] },
    Right { group: "", resources: &["events"], verbs: &["create", "patch"] },
    // list: `driftless events` and the review page's history read them back.
    Right { group: "events.k8s.io", resources: &["events"], verbs: &["create", "patch", "get", "list", "watch"] },
    // Alerts read their Providers; Receivers read their Secrets (above) and are given a path.
    Right { group: GROUP, resources: &["providers", "alerts", "receivers"], verbs: &["get", "list", "watch"] },
    Right { group: GROUP, resources: &["providers/status", "alerts/status", "receivers/status"], verbs: &["get", "patch", "update"] },
    // The review page: who a bearer token belongs to, and whether that user may patch the
    // object an action touches (the page grants nothing RBAC does not).
    Right { group: "authentication.k8s.io", resources: &["tokenreviews"], verbs: &["create"] },
    Right { group: "authorization.k8s.io", resources: &["subjectaccessreviews"], verbs: &["create"] },
];

/// The controller's rights in each runner namespace only (a ClusterRole bound there by a
/// RoleBinding): it writes outputs, RunSpecs and plan renderings as Secrets and starts and
/// deletes runner pods there, and nowhere else. A Kustomization that applies with the
/// controller's own identity can therefore create no Pod or Secret in `kube-system`.
pub const RUNS: &[Right] = &[
    Right { group: "", resources: &["secrets"], verbs: &["create", "update", "patch", "delete"] },
    // The readable plan of `storeReadablePlan: human`, where tofu-controller keeps it.
    Right { group: "", resources: &["configmaps"], verbs: &["create", "update", "patch", "delete"] },
    Right { group: "", resources: &["pods"], verbs: &["create", "delete"] },
];

/// The controller's rights in its own namespace only (a Role): the leader-election Lease
/// lives there, so there is no reason to let it touch Leases anywhere else (node
/// heartbeats and other controllers' elections are Leases too).
pub const LEADER_ELECTION: &[Right] =
    &[Right { group: "coordination.k8s.io", resources: &["leases"], verbs: &["get", "create", "update"] }];

/// A runner pod's rights, bound per runner namespace (a ClusterRole used by RoleBindings):
/// it reads its RunSpec and writes state, plans and outputs as Secrets, and holds the state
/// lock as a Lease, in its own namespace only.
pub const RUNNER: &[Right] = &[
    Right { group: "", resources: &["secrets"], verbs: &["get", "list", "create", "update", "patch", "delete"] },
    Right { group: "coordination.k8s.io", resources: &["leases"], verbs: &["get", "create", "update", "delete"] },
];

/// The `rules` of a (Cluster)Role granting exactly `rights`.
pub fn policy_rules(rights: &[Right]) -> Vec<PolicyRule> {
    rights
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.group.to_owned()]),
            resources: Some(r.resources.iter().map(|s| (*s).to_owned()).collect()),
            verbs: r.verbs.iter().map(|s| (*s).to_owned()).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

/// Every single access `rights` grant, in table order.
pub fn accesses(rights: &[Right]) -> Vec<Access> {
    let mut out = Vec::new();
    for right in rights {
        for resource in right.resources {
            let (resource, subresource) = match resource.split_once('/') {
                Some((resource, sub)) => (resource, Some(sub)),
                None => (*resource, None),
            };
            for verb in right.verbs {
                out.push(Access { group: right.group, resource, subresource, verb });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_split_subresources_and_name_every_verb() {
        let all = accesses(CONTROLLER);
        assert!(all.contains(&Access { group: GROUP, resource: "terraforms", subresource: Some("status"), verb: "patch" }));
        assert!(accesses(RUNS).contains(&Access { group: "", resource: "pods", subresource: None, verb: "create" }));
        assert_eq!(all.iter().filter(|a| a.subresource == Some("finalizers")).count(), crate::api::Kind::RECONCILED.len());
        let shown = Access { group: GROUP, resource: "terraforms", subresource: Some("status"), verb: "update" }.to_string();
        assert_eq!(shown, "update terraforms/status.driftless.dev");
    }

    #[test]
    fn every_kind_of_the_api_is_in_the_controllers_role() {
        let all = accesses(CONTROLLER);
        let has = |resource: &str, sub: Option<&str>, verb: &str| {
            all.iter().any(|a| a.group == GROUP && a.resource == resource && a.subresource == sub && a.verb == verb)
        };
        for kind in crate::api::Kind::ALL {
            assert!(has(kind.plural(), None, "watch"), "{kind}: watch");
            assert!(has(kind.plural(), Some("status"), "patch"), "{kind}: status");
        }
        for kind in crate::api::Kind::RECONCILED {
            assert!(has(kind.plural(), Some("finalizers"), "update"), "{kind}: finalizers");
        }
    }

    #[test]
    fn the_controller_may_not_delete_driftless_objects_nor_touch_rbac() {
        let all = accesses(CONTROLLER);
        assert!(!all.iter().any(|a| a.group == GROUP && a.verb == "delete"));
        assert!(!all.iter().any(|a| a.group == "rbac.authorization.k8s.io" || a.resource == "namespaces"));
        assert!(!all.iter().any(|a| a.resource == "leases"), "leases only through the namespaced leader-election Role");
        let writes = |a: &&Access| matches!(a.verb, "create" | "update" | "patch" | "delete");
        assert!(
            !all.iter().filter(writes).any(|a| a.resource == "pods" || a.resource == "secrets"),
            "pods and Secrets are written only in runner namespaces (RUNS)"
        );
    }
}
