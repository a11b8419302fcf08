//! A Kustomization's plan as a reviewer reads it: one line per object, kept in a Secret
//! beside the object (a diff of Secrets is itself secret).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::apply::Action;
use super::inventory::ObjectId;
use crate::api::{Kind, Kustomization, PlanSummary, ResourceRef, annotation};
use crate::store::{ObjectStore, StoreError};

/// The Secret holding the readable plan of a Kustomization.
pub fn plan_secret_name(kustomization: &str) -> String {
    format!("{kustomization}-plan")
}

/// The readable plan: one line per object (`+` create, `~` change with the changed fields,
/// `±` recreate, `=` left alone as its marks ask, `-` prune); field values are left out (they
/// may be secret).
pub fn render_plan(dry: &[super::apply::Applied], pruned: &[ResourceRef], summary: PlanSummary) -> String {
    let mut out = String::new();
    for a in dry {
        match a.action {
            Action::Created => out.push_str(&format!("  + {} (create)\n", a.id.display())),
            Action::Configured => {
                out.push_str(&format!("  ~ {} (change)\n", a.id.display()));
                if let Some(live) = &a.live {
                    for field in super::diff::changed_fields(live, &a.result) {
                        out.push_str(&format!("      {field}\n"));
                    }
                }
            }
            Action::Recreated => out.push_str(&format!("  ± {} (recreate: an immutable field changed)\n", a.id.display())),
            Action::Skipped(why) => out.push_str(&format!("  = {} (left alone: {why})\n", a.id.display())),
            Action::Unchanged => {}
        }
    }
    for r in pruned {
        if let Some(id) = ObjectId::parse(r) {
            out.push_str(&format!("  - {} (prune)\n", id.display()));
        }
    }
    out.push_str(&format!("\nPlan: {summary}.\n"));
    out
}

/// Stores `rendering` of plan `plan_id` in the object's plan Secret (owned by the object, so
/// it goes with it); returns where, for `status.plan.storedIn`.
pub async fn store_rendering<S: ObjectStore>(
    store: &S,
    object: &Kustomization,
    plan_id: &str,
    rendering: String,
) -> Result<String, StoreError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let owner = object.metadata.name.clone().unwrap_or_default();
    let name = plan_secret_name(&owner);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            annotations: Some(
                [
                    (annotation::OWNER.to_string(), format!("{}/{owner}", Kind::Kustomization)),
                    (annotation::PLAN_ID.to_string(), plan_id.to_string()),
                ]
                .into(),
            ),
            owner_references: object.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
                    kind: Kind::Kustomization.as_str().into(),
                    name: owner.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        type_: Some(driftless_core::names::secret_type::PLAN.into()),
        data: Some([("rendering".to_string(), k8s_openapi::ByteString(rendering.into_bytes()))].into()),
        ..Default::default()
    };
    store.apply(&secret).await?;
    Ok(format!("secret/{namespace}/{name}"))
}

/// The rendering of plan `plan_id`, when the plan Secret holds that one.
pub fn rendering_of(secret: Secret, plan_id: &str) -> Option<String> {
    let ours = secret.metadata.annotations.as_ref().and_then(|a| a.get(annotation::PLAN_ID)).map(String::as_str) == Some(plan_id);
    let data = secret.data.filter(|_| ours)?;
    data.get("rendering").map(|b| String::from_utf8_lossy(&b.0).to_string())
}
