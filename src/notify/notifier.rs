//! The notifier: every event the reconcilers emit passes through it; each Alert that
//! matches sends it to its Provider. Deliveries run beside the reconcilers, never in their
//! way: a slow or failing endpoint costs a task and a Provider condition, not a reconcile.
//!
//! Repeats are not filtered here: the reconcilers emit a drift once per distinct drift id
//! (see [`crate::drift`]), so what reaches an Alert is already one event per change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::alerts::AlertRules;
use super::delivery::{HttpClients, RetryPolicy, deliver};
use super::payload::{DEFAULT_TIMEOUT, Endpoint, Notification};
use crate::api::{Alert, Provider};
use crate::store::{Event, ObjectStore, StoreError};

/// How many deliveries run at once.
const PARALLEL_DELIVERIES: usize = 32;
/// How long the Alerts, Providers and endpoints (with their Secrets) read for one event are
/// reused for the next: a burst of events costs one read, and an edit shows within this.
const OBJECTS_TTL: Duration = Duration::from_secs(2);

/// What the notifier is told.
#[derive(Debug)]
pub(crate) enum Message {
    Event(Box<Event>),
    /// Answered once every delivery queued before it has ended (a CLI command waits on it
    /// before it exits, so its alerts are not lost).
    Flush(oneshot::Sender<()>),
}

/// The sending side, held by the [`crate::store::EventLog`].
#[derive(Clone, Debug)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Message>,
}

/// Settings of the notifier.
#[derive(Clone, Debug, Default)]
pub struct NotifierSettings {
    /// Base URL of the review page, for the link in every alert (`--review-url`).
    pub review_url: Option<String>,
    pub retry: RetryPolicy,
    /// `--no-cross-namespace-refs`: an Alert naming another namespace's objects hears nothing.
    pub no_cross_namespace_refs: bool,
}

impl Notifier {
    /// Starts the notifier's task on the current runtime.
    pub fn start<S: ObjectStore + Clone + 'static>(store: S, settings: NotifierSettings) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, settings, rx));
        Self { tx }
    }

    pub(crate) fn send(&self, event: &Event) {
        let _ = self.tx.send(Message::Event(Box::new(event.clone())));
    }

    /// Waits (at most `limit`) until the deliveries of every event sent so far have ended.
    pub async fn flush(&self, limit: Duration) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(limit, wait).await;
        }
    }
}

impl crate::store::EventTap for Notifier {
    fn send(&self, event: &Event) {
        Notifier::send(self, event);
    }

    fn flush(&self, limit: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(Notifier::flush(self, limit))
    }
}

/// Alerts and Providers as read a moment ago, and the endpoints resolved from them since.
struct Objects {
    read_at: Instant,
    alerts: Vec<(Alert, AlertRules)>,
    providers: BTreeMap<ProviderKey, Provider>,
    endpoints: BTreeMap<ProviderKey, Result<Endpoint, String>>,
}

async fn read_objects<S: ObjectStore>(store: &S, tenancy: &crate::api::Tenancy) -> Result<Objects, StoreError> {
    let alerts = store
        .list::<Alert>()
        .await?
        .into_iter()
        .filter(|a| !a.spec.suspend)
        // Refused Alerts say why in their status (notify::objects) and deliver nothing.
        .filter(|a| super::objects::alert_refusal(a, tenancy).is_none())
        .filter_map(|a| AlertRules::new(&a).ok().map(|rules| (a, rules)))
        .collect();
    let providers = store
        .list::<Provider>()
        .await?
        .into_iter()
        .map(|p| ((p.metadata.namespace.clone().unwrap_or_else(|| "default".into()), p.metadata.name.clone().unwrap_or_default()), p))
        .collect();
    Ok(Objects { read_at: Instant::now(), alerts, providers, endpoints: BTreeMap::new() })
}

async fn run<S: ObjectStore + Clone + 'static>(store: S, settings: NotifierSettings, mut rx: mpsc::UnboundedReceiver<Message>) {
    let tenancy = crate::api::Tenancy { cross_namespace_refs: !settings.no_cross_namespace_refs, ..crate::api::Tenancy::LOCAL };
    let limit = Arc::new(Semaphore::new(PARALLEL_DELIVERIES));
    let mut running: JoinSet<()> = JoinSet::new();
    let mut objects: Option<Objects> = None;
    let ledger = Ledger::default();
    let clients = HttpClients::default();
    while let Some(message) = rx.recv().await {
        let event = match message {
            Message::Event(e) => e,
            Message::Flush(done) => {
                while running.join_next().await.is_some() {}
                let _ = done.send(());
                continue;
            }
        };
        while running.try_join_next().is_some() {}
        if objects.as_ref().is_none_or(|o| o.read_at.elapsed() > OBJECTS_TTL) {
            objects = match read_objects(&store, &tenancy).await {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(reason = %event.reason, "cannot read Alerts and Providers; event not sent: {e}");
                    None
                }
            };
        }
        let Some(current) = &mut objects else { continue };
        let notifications = match route(&store, current, &event, &settings).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(reason = %event.reason, "cannot route an event to its Alerts: {e}");
                continue;
            }
        };
        for (provider, endpoint, notification) in notifications {
            let (store, limit, policy, ledger, clients) =
                (store.clone(), limit.clone(), settings.retry.clone(), ledger.clone(), clients.clone());
            let span = tracing::info_span!("deliver", provider = %format!("{}/{}", provider.0, provider.1), reason = %event.reason);
            running.spawn(
                async move {
                    let Ok(_permit) = limit.acquire_owned().await else { return };
                    send(&store, &ledger, &clients, provider, endpoint, notification, &policy).await;
                }
                .instrument(span),
            );
        }
    }
    while running.join_next().await.is_some() {}
}

/// The Providers (namespace, name) an event goes to, each with its endpoint and payload.
async fn route<S: ObjectStore>(
    store: &S,
    objects: &mut Objects,
    event: &Event,
    settings: &NotifierSettings,
) -> Result<Vec<((String, String), Endpoint, Notification)>, StoreError> {
    let mut labels: Option<BTreeMap<String, String>> = None;
    let mut out = Vec::new();
    let Objects { alerts, providers, endpoints, .. } = objects;
    for (alert, rules) in alerts.iter() {
        if rules.needs_labels(event) && labels.is_none() {
            labels = Some(object_labels(store, event).await?);
        }
        if !rules.matches(event, labels.as_ref().unwrap_or(&BTreeMap::new())) {
            continue;
        }
        let namespace = alert.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let key = (namespace.clone(), alert.spec.provider_ref.name.clone());
        let Some(provider) = providers.get(&key) else { continue };
        if provider.spec.suspend {
            continue;
        }
        let endpoint = match endpoints.get(&key) {
            Some(resolved) => resolved.clone(),
            None => {
                let resolved = endpoint(store, provider).await?;
                if let Err(message) = &resolved {
                    // Recorded once per read of the objects, not once per event.
                    super::objects::record_delivery(store, &key.0, &key.1, Err(message.clone())).await?;
                }
                endpoints.insert(key.clone(), resolved.clone());
                resolved
            }
        };
        let Ok(endpoint) = endpoint else { continue };
        let notification = Notification {
            event: event.clone(),
            metadata: alert.spec.event_metadata.clone(),
            summary: alert.spec.summary.clone(),
            review_url: settings.review_url.as_ref().map(|base| review_link(base, event)),
        };
        out.push((key, endpoint, notification));
    }
    Ok(out)
}

/// The object's page on the review page (the link of a source's event is the overview).
pub fn review_link(base: &str, event: &Event) -> String {
    crate::api::review_link(base, &event.kind, &event.namespace, &event.name)
}

async fn object_labels<S: ObjectStore>(store: &S, event: &Event) -> Result<BTreeMap<String, String>, StoreError> {
    let (ns, name) = (event.namespace.as_str(), event.name.as_str());
    let meta = match crate::api::Kind::from_api(&event.kind) {
        Some(kind) => crate::with_kind!(kind, K => store.get::<K>(ns, name).await?.map(|o| kube::Resource::meta(&o).clone())),
        None => None,
    };
    Ok(meta.and_then(|m| m.labels).unwrap_or_default())
}

/// A Provider's endpoint: spec plus its Secrets (address, token, headers, CA), or why it
/// cannot be made (for the Provider's status).
pub async fn endpoint<S: ObjectStore>(store: &S, provider: &Provider) -> Result<Result<Endpoint, String>, StoreError> {
    let namespace = provider.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let spec = &provider.spec;
    let kind = match spec.type_.parse() {
        Ok(k) => k,
        Err(e) => return Ok(Err(format!("spec.type: {e}"))),
    };
    let mut secret = BTreeMap::new();
    if let Some(r) = &spec.secret_ref {
        match store.get::<Secret>(&namespace, &r.name).await? {
            None => return Ok(Err(format!("spec.secretRef: Secret {namespace}/{} not found", r.name))),
            Some(s) => match driftless_core::secret::secret_strings(&s) {
                Ok(data) => secret = data,
                Err(key) => return Ok(Err(format!("spec.secretRef: Secret {namespace}/{} key {key:?} is not text", r.name))),
            },
        }
    }
    let headers = match secret.get("headers") {
        None => BTreeMap::new(),
        Some(text) => match serde_yaml::from_str::<BTreeMap<String, String>>(text) {
            Ok(h) => h,
            Err(_) => return Ok(Err("spec.secretRef: the `headers` key must be a YAML map of header names to values".into())),
        },
    };
    let ca_pem = match &spec.cert_secret_ref {
        None => None,
        Some(r) => match store.get::<Secret>(&namespace, &r.name).await? {
            None => return Ok(Err(format!("spec.certSecretRef: Secret {namespace}/{} not found", r.name))),
            Some(s) => driftless_core::secret::secret_strings(&s).ok().and_then(|mut d| d.remove("ca.crt")),
        },
    };
    let Some(address) = secret.get("address").cloned().or_else(|| spec.address.clone()).filter(|a| !a.trim().is_empty()) else {
        return Ok(Err("spec.address: required (or an `address` key in spec.secretRef's Secret)".into()));
    };
    Ok(Ok(Endpoint {
        kind,
        address,
        channel: spec.channel.clone(),
        username: spec.username.clone(),
        token: secret.get("token").cloned(),
        headers,
        ca_pem,
        timeout: spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(DEFAULT_TIMEOUT),
    }))
}

/// The last outcome written to each Provider's status, so a stream of successful
/// deliveries costs one status write a minute, not one per event.
#[derive(Clone, Default)]
struct Ledger(Arc<std::sync::Mutex<BTreeMap<ProviderKey, (bool, Instant)>>>);

/// A Provider's namespace and name.
type ProviderKey = (String, String);

/// How often a Provider that keeps delivering has its `lastDeliveredAt` refreshed.
const STATUS_REFRESH: Duration = Duration::from_secs(60);

impl Ledger {
    /// Whether this outcome should be written: a change, or a refresh that is due.
    fn should_write(&self, provider: &(String, String), ok: bool) -> bool {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let write = map.get(provider).is_none_or(|(was_ok, at)| *was_ok != ok || at.elapsed() > STATUS_REFRESH);
        if write {
            map.insert(provider.clone(), (ok, Instant::now()));
        }
        write
    }
}

/// Delivers one notification and records the outcome on the Provider.
async fn send<S: ObjectStore>(
    store: &S,
    ledger: &Ledger,
    clients: &HttpClients,
    provider: (String, String),
    endpoint: Endpoint,
    notification: Notification,
    policy: &RetryPolicy,
) {
    let outcome = match deliver(clients, &endpoint, &notification, policy).await {
        Ok(d) => {
            tracing::debug!(attempts = d.attempts, "delivered");
            Ok(())
        }
        Err(e) => {
            tracing::warn!("delivery failed: {e}");
            Err(e.to_string())
        }
    };
    if !ledger.should_write(&provider, outcome.is_ok()) {
        return;
    }
    if let Err(e) = super::objects::record_delivery(store, &provider.0, &provider.1, outcome).await {
        tracing::warn!("cannot record the delivery on the Provider: {e}");
    }
}
