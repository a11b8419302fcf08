//! The status of Providers, Alerts and Receivers: whether each can work as written, and
//! why not, so a typo shows on `driftless get alerts` instead of as silence. A Receiver's
//! status also publishes its webhook path.

use k8s_openapi::api::core::v1::Secret;

use super::alerts::AlertRules;
use super::receiver::{receiver_token, webhook_path};
use crate::api::{
    Alert, ConditionStatus, Conditions, NotificationStatus, PROVIDER_TYPES, Provider, RECEIVER_TYPES, Receiver, ReceiverStatus, Tenancy,
    condition_type as ct, cross_namespace_refusal, reason,
};
use crate::store::{ObjectStore, StoreError};

/// Ready=False reason of a Provider whose last delivery failed (kept until one succeeds).
pub const DELIVERY_FAILED: &str = "DeliveryFailed";
/// Ready=False reason of an Alert whose Provider does not exist.
pub const PROVIDER_NOT_FOUND: &str = "ProviderNotFound";
/// Ready=False reason of a Receiver or Provider whose Secret is missing or lacks a key.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn namespace_of<K: kube::Resource>(o: &K) -> String {
    o.meta().namespace.clone().unwrap_or_else(|| "default".into())
}

fn name_of<K: kube::Resource>(o: &K) -> String {
    o.meta().name.clone().unwrap_or_default()
}

/// Brings every Provider, Alert and Receiver's status up to date with its spec; writes only
/// what changed.
pub async fn refresh<S: ObjectStore>(store: &S, tenancy: &Tenancy) -> Result<(), StoreError> {
    for provider in store.list::<Provider>().await? {
        let verdict = check_provider(store, &provider).await?;
        let mut status = provider.status.clone().unwrap_or_default();
        let delivery_failed = status.condition(ct::READY).is_some_and(|c| c.reason == DELIVERY_FAILED);
        match verdict {
            Err((why, message)) => set(&mut status, false, why, &message, provider.metadata.generation),
            // A failed delivery stays visible until a delivery succeeds.
            Ok(()) if delivery_failed && status.observed_generation == provider.metadata.generation => {}
            Ok(()) => set(&mut status, true, reason::SUCCEEDED, "Provider is ready", provider.metadata.generation),
        }
        if provider.status.as_ref() != Some(&status) {
            store.update::<Provider>(&namespace_of(&provider), &name_of(&provider), |p| p.status = Some(status.clone())).await?;
        }
    }
    for alert in store.list::<Alert>().await? {
        let namespace = namespace_of(&alert);
        let mut status = alert.status.clone().unwrap_or_default();
        let verdict = match AlertRules::new(&alert) {
            Err(e) => Err((reason::INVALID_SPEC, e.to_string())),
            Ok(_) if let Some(refused) = alert_refusal(&alert, tenancy) => Err((reason::ACCESS_DENIED, refused)),
            Ok(_) => match store.get::<Provider>(&namespace, &alert.spec.provider_ref.name).await? {
                None => {
                    Err((PROVIDER_NOT_FOUND, format!("spec.providerRef: Provider {namespace}/{} not found", alert.spec.provider_ref.name)))
                }
                Some(_) => Ok(()),
            },
        };
        match verdict {
            Err((why, message)) => set(&mut status, false, why, &message, alert.metadata.generation),
            Ok(()) => set(&mut status, true, reason::SUCCEEDED, "Alert is ready", alert.metadata.generation),
        }
        if alert.status.as_ref() != Some(&status) {
            store.update::<Alert>(&namespace, &name_of(&alert), |a| a.status = Some(status.clone())).await?;
        }
    }
    for receiver in store.list::<Receiver>().await? {
        let (namespace, name) = (namespace_of(&receiver), name_of(&receiver));
        let mut status = receiver.status.clone().unwrap_or_default();
        if !RECEIVER_TYPES.contains(&receiver.spec.type_.as_str()) {
            let message = format!("spec.type: {:?} is not one of {}", receiver.spec.type_, RECEIVER_TYPES.join(", "));
            set_receiver(&mut status, false, reason::INVALID_SPEC, &message, receiver.metadata.generation);
            status.webhook_path = None;
        } else if receiver.spec.resources.is_empty() {
            let message = "spec.resources: name at least one source to reconcile";
            set_receiver(&mut status, false, reason::INVALID_SPEC, message, receiver.metadata.generation);
            status.webhook_path = None;
        } else if let Err(e) = super::alerts::unknown_kind("resources", &receiver.spec.resources) {
            set_receiver(&mut status, false, reason::INVALID_SPEC, &e.to_string(), receiver.metadata.generation);
            status.webhook_path = None;
        } else if let Some(refused) = receiver_refusal(&receiver, tenancy) {
            set_receiver(&mut status, false, reason::ACCESS_DENIED, &refused, receiver.metadata.generation);
            status.webhook_path = None;
        } else {
            match receiver_token(store, &receiver).await? {
                Err(message) => {
                    set_receiver(&mut status, false, SECRET_NOT_FOUND, &message, receiver.metadata.generation);
                    status.webhook_path = None;
                }
                Ok(token) => {
                    let path = webhook_path(&token, &name, &namespace);
                    let message = format!("Receiver initialized for path {path}");
                    set_receiver(&mut status, true, reason::SUCCEEDED, &message, receiver.metadata.generation);
                    status.webhook_path = Some(path);
                }
            }
        }
        if receiver.status.as_ref() != Some(&status) {
            store.update::<Receiver>(&namespace, &name, |r| r.status = Some(status.clone())).await?;
        }
    }
    Ok(())
}

/// Why the cluster owner refuses an Alert: an event source in another namespace.
pub fn alert_refusal(alert: &Alert, tenancy: &Tenancy) -> Option<String> {
    let refs = alert.spec.event_sources.iter().enumerate().map(|(i, s)| (format!("spec.eventSources[{i}]"), s.namespace.as_deref()));
    cross_namespace_refusal(tenancy, &namespace_of(alert), refs)
}

/// Why the cluster owner refuses a Receiver: a resource in another namespace.
pub fn receiver_refusal(receiver: &Receiver, tenancy: &Tenancy) -> Option<String> {
    let refs = receiver.spec.resources.iter().enumerate().map(|(i, s)| (format!("spec.resources[{i}]"), s.namespace.as_deref()));
    cross_namespace_refusal(tenancy, &namespace_of(receiver), refs)
}

fn set(status: &mut NotificationStatus, ready: bool, why: &str, message: &str, generation: Option<i64>) {
    let s = if ready { ConditionStatus::True } else { ConditionStatus::False };
    let unchanged = status.condition(ct::READY).is_some_and(|c| c.status == s && c.reason == why && c.message == message);
    if !unchanged {
        status.set_condition(ct::READY, s, why, message, generation, &now());
    }
    status.observed_generation = generation;
}

fn set_receiver(status: &mut ReceiverStatus, ready: bool, why: &str, message: &str, generation: Option<i64>) {
    let s = if ready { ConditionStatus::True } else { ConditionStatus::False };
    let unchanged = status.condition(ct::READY).is_some_and(|c| c.status == s && c.reason == why && c.message == message);
    if !unchanged {
        status.set_condition(ct::READY, s, why, message, generation, &now());
    }
    status.observed_generation = generation;
}

/// Records the outcome of a delivery on the Provider: Ready with the time of the last
/// delivery, or not Ready with why (the error never holds the address or a token).
pub async fn record_delivery<S: ObjectStore>(
    store: &S,
    namespace: &str,
    name: &str,
    outcome: Result<(), String>,
) -> Result<(), StoreError> {
    let at = now();
    store
        .update::<Provider>(namespace, name, |p| {
            let generation = p.metadata.generation;
            let status = p.status.get_or_insert_with(Default::default);
            match &outcome {
                Ok(()) => {
                    set(status, true, reason::SUCCEEDED, "Provider is ready", generation);
                    status.last_delivered_at = Some(at.clone());
                }
                Err(message) => set(status, false, DELIVERY_FAILED, message, generation),
            }
        })
        .await?;
    Ok(())
}

/// Whether a Provider can deliver as written: its type, address and Secret keys.
async fn check_provider<S: ObjectStore>(store: &S, provider: &Provider) -> Result<Result<(), (&'static str, String)>, StoreError> {
    let spec = &provider.spec;
    if !PROVIDER_TYPES.contains(&spec.type_.as_str()) {
        return Ok(Err((reason::INVALID_SPEC, format!("spec.type: {:?} is not one of {}", spec.type_, PROVIDER_TYPES.join(", ")))));
    }
    let namespace = namespace_of(provider);
    let secret = match &spec.secret_ref {
        None => None,
        Some(r) => match store.get::<Secret>(&namespace, &r.name).await? {
            None => return Ok(Err((SECRET_NOT_FOUND, format!("spec.secretRef: Secret {namespace}/{} not found", r.name)))),
            Some(s) => Some(driftless_core::secret::secret_strings(&s).unwrap_or_default()),
        },
    };
    let has = |key: &str| secret.as_ref().is_some_and(|s| s.get(key).is_some_and(|v| !v.trim().is_empty()));
    if spec.address.as_deref().unwrap_or_default().is_empty() && !has("address") {
        return Ok(Err((reason::INVALID_SPEC, "spec.address: required (or an `address` key in spec.secretRef's Secret)".into())));
    }
    if matches!(spec.type_.as_str(), "generic-hmac" | "github") && !has("token") {
        let why = format!("spec.secretRef: a {} Provider needs a Secret with a `token` key", spec.type_);
        return Ok(Err((SECRET_NOT_FOUND, why)));
    }
    if let Some(r) = &spec.cert_secret_ref
        && store.get::<Secret>(&namespace, &r.name).await?.is_none()
    {
        return Ok(Err((SECRET_NOT_FOUND, format!("spec.certSecretRef: Secret {namespace}/{} not found", r.name))));
    }
    Ok(Ok(()))
}
