//! The kinds of the `driftless.dev` API, as one enum: every other layer names a kind with
//! it, never with a string, and reaches the kind's Rust type through
//! [`with_reconciled_kind!`](crate::with_reconciled_kind). Registering a kind is a variant
//! here plus an arm in that macro.

use serde::{Deserialize, Serialize};

/// A kind of the `driftless.dev/v1alpha1` API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    GitRepository,
    Bucket,
    OciRepository,
    HelmRepository,
    HelmChart,
    Terraform,
    Kustomization,
    Provider,
    Alert,
    Receiver,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::GitRepository,
        Kind::Bucket,
        Kind::OciRepository,
        Kind::HelmRepository,
        Kind::HelmChart,
        Kind::Terraform,
        Kind::Kustomization,
        Kind::Provider,
        Kind::Alert,
        Kind::Receiver,
    ];

    /// The kinds the reconcile core reconciles (sources first: the others read them).
    pub const RECONCILED: [Kind; 7] = [
        Kind::GitRepository,
        Kind::Bucket,
        Kind::OciRepository,
        Kind::HelmRepository,
        Kind::HelmChart,
        Kind::Terraform,
        Kind::Kustomization,
    ];

    /// The sources whose artifact is a tree of files: what a Kustomization or Terraform
    /// reads, and a HelmChart packages a chart directory from (with HelmRepository too).
    pub const TREE_SOURCES: [Kind; 3] = [Kind::GitRepository, Kind::Bucket, Kind::OciRepository];

    /// What a HelmChart's `sourceRef` may name (Flux's enum).
    pub const CHART_SOURCES: [Kind; 3] = [Kind::HelmRepository, Kind::GitRepository, Kind::Bucket];

    /// The kinds that plan, wait for approval and drift: what the review page shows.
    pub const PLANNED: [Kind; 2] = [Kind::Terraform, Kind::Kustomization];

    /// The API kind, as in YAML (`Terraform`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::GitRepository => "GitRepository",
            Kind::Bucket => "Bucket",
            Kind::OciRepository => "OCIRepository",
            Kind::HelmRepository => "HelmRepository",
            Kind::HelmChart => "HelmChart",
            Kind::Terraform => "Terraform",
            Kind::Kustomization => "Kustomization",
            Kind::Provider => "Provider",
            Kind::Alert => "Alert",
            Kind::Receiver => "Receiver",
        }
    }

    /// The resource name of the API and of RBAC rules (`terraforms`).
    pub const fn plural(self) -> &'static str {
        match self {
            Kind::GitRepository => "gitrepositories",
            Kind::Bucket => "buckets",
            Kind::OciRepository => "ocirepositories",
            Kind::HelmRepository => "helmrepositories",
            Kind::HelmChart => "helmcharts",
            Kind::Terraform => "terraforms",
            Kind::Kustomization => "kustomizations",
            Kind::Provider => "providers",
            Kind::Alert => "alerts",
            Kind::Receiver => "receivers",
        }
    }

    /// The lower-case name the CLI prints and review URLs use (`terraform`).
    pub const fn segment(self) -> &'static str {
        match self {
            Kind::GitRepository => "gitrepository",
            Kind::Bucket => "bucket",
            Kind::OciRepository => "ocirepository",
            Kind::HelmRepository => "helmrepository",
            Kind::HelmChart => "helmchart",
            Kind::Terraform => "terraform",
            Kind::Kustomization => "kustomization",
            Kind::Provider => "provider",
            Kind::Alert => "alert",
            Kind::Receiver => "receiver",
        }
    }

    /// Short names a user may type, as `kubectl` and `flux` accept them.
    pub const fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::GitRepository => &["gitrepo", "gitrepos"],
            Kind::Terraform => &["tf"],
            Kind::Kustomization => &["ks"],
            Kind::OciRepository => &["ocirepo", "ocirepos", "oci"],
            Kind::HelmRepository => &["helmrepo", "helmrepos"],
            Kind::HelmChart => &["hc"],
            Kind::Bucket | Kind::Provider | Kind::Alert | Kind::Receiver => &[],
        }
    }

    /// The kind an API object names exactly (`kind: Terraform`).
    pub fn from_api(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The kind a person typed: any case, singular, plural or short (`tf`, `Terraforms`).
    pub fn from_user(text: &str) -> Option<Kind> {
        let text = text.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|k| k.segment() == text || k.plural() == text || k.short_names().contains(&text.as_str()))
    }

    /// A source kind: its artifact is what the other kinds read.
    pub fn is_source(self) -> bool {
        matches!(self, Kind::GitRepository | Kind::Bucket | Kind::OciRepository | Kind::HelmRepository | Kind::HelmChart)
    }

    /// A kind the reconcile core reconciles.
    pub fn is_reconciled(self) -> bool {
        Kind::RECONCILED.contains(&self)
    }

    /// A kind that plans, waits for approval and drifts.
    pub fn is_planned(self) -> bool {
        Kind::PLANNED.contains(&self)
    }

    /// Kinds for messages (`GitRepository, Bucket or OCIRepository`).
    pub fn list(kinds: &[Kind]) -> String {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object of the API: the key of schedules, wake-ups and CLI verbs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { kind, namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The page of an object on the review page (`/objects/terraform/<ns>/<name>`) under `base`;
/// kinds without a page of their own link to the overview. Events, alerts and the page
/// itself build links with this one function.
pub fn review_link(base: &str, kind: &str, namespace: &str, name: &str) -> String {
    let path = match Kind::from_api(kind).filter(|k| k.is_planned()) {
        Some(kind) => object_path(kind, namespace, name),
        None => "/".to_string(),
    };
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The review page's path of one object.
pub fn object_path(kind: Kind, namespace: &str, name: &str) -> String {
    format!("/objects/{}/{}/{}", kind.segment(), path_segment(namespace), path_segment(name))
}

/// A path segment, percent-encoded where a name could break the path (names are DNS labels,
/// but links must not trust that).
pub fn path_segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Runs `$body` with `$K` naming the Rust type of the reconciled kind `$kind` (an
/// [`api::Kind`](crate::api::Kind)); `$other` for a kind that is not reconciled. The one
/// place a kind's variant meets its type, so code that must be typed (store reads, the
/// reconcile sequence) is written once for every kind.
///
/// ```ignore
/// with_reconciled_kind!(kind, K => store.get::<K>(ns, name).await?.map(|o| o.meta().clone()), _ => None)
/// ```
#[macro_export]
macro_rules! with_reconciled_kind {
    ($kind:expr, $K:ident => $body:expr, _ => $other:expr) => {
        match $kind {
            $crate::api::Kind::GitRepository => {
                type $K = $crate::api::GitRepository;
                $body
            }
            $crate::api::Kind::Bucket => {
                type $K = $crate::api::Bucket;
                $body
            }
            $crate::api::Kind::OciRepository => {
                type $K = $crate::api::OciRepository;
                $body
            }
            $crate::api::Kind::HelmRepository => {
                type $K = $crate::api::HelmRepository;
                $body
            }
            $crate::api::Kind::HelmChart => {
                type $K = $crate::api::HelmChart;
                $body
            }
            $crate::api::Kind::Terraform => {
                type $K = $crate::api::Terraform;
                $body
            }
            $crate::api::Kind::Kustomization => {
                type $K = $crate::api::Kustomization;
                $body
            }
            #[allow(unreachable_patterns)]
            _ => $other,
        }
    };
}

/// Runs `$body` with `$K` naming the Rust type of any kind `$kind` of the API.
#[macro_export]
macro_rules! with_kind {
    ($kind:expr, $K:ident => $body:expr) => {
        match $kind {
            $crate::api::Kind::Provider => {
                type $K = $crate::api::Provider;
                $body
            }
            $crate::api::Kind::Alert => {
                type $K = $crate::api::Alert;
                $body
            }
            $crate::api::Kind::Receiver => {
                type $K = $crate::api::Receiver;
                $body
            }
            reconciled => $crate::with_reconciled_kind!(reconciled, $K => $body, _ => unreachable!("every kind is listed")),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_name_kinds_as_kubectl_does() {
        assert_eq!(Kind::from_user("tf"), Some(Kind::Terraform));
        assert_eq!(Kind::from_user("Terraforms"), Some(Kind::Terraform));
        assert_eq!(Kind::from_user("gitrepo"), Some(Kind::GitRepository));
        assert_eq!(Kind::from_user("ks"), Some(Kind::Kustomization));
        assert_eq!(Kind::from_user("helmrelease"), None);
        assert_eq!(Kind::from_user("hc"), Some(Kind::HelmChart));
        assert_eq!(Kind::list(&Kind::TREE_SOURCES), "GitRepository, Bucket or OCIRepository");
        assert_eq!(Kind::from_api("terraform"), None, "the API's spelling is exact");
    }

    #[test]
    fn every_kind_reads_back_from_its_names() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_api(k.as_str()), Some(k));
            assert_eq!(Kind::from_user(k.plural()), Some(k));
        }
    }

    #[test]
    fn only_planned_kinds_have_a_review_page_of_their_own() {
        assert_eq!(review_link("https://r.example/", "Terraform", "ns", "a b"), "https://r.example/objects/terraform/ns/a%20b");
        assert_eq!(review_link("https://r.example", "GitRepository", "ns", "x"), "https://r.example/");
    }
}
