//! Alerts and webhooks: Provider/Alert send the reconcilers' events to people (chat,
//! webhooks, commit statuses), Receiver lets a service ask for an immediate reconcile.
//! Field names and behaviour follow Flux's notification-controller.
//!
//! [`payload`] builds the request each service documents (pure); [`delivery`] sends it with
//! timeouts and retries; [`alerts`] decides which Alerts an event matches; [`notifier`] runs
//! beside the reconcilers and ties them together; [`objects`] keeps the kinds' status;
//! [`receiver`] serves the webhooks.

pub mod alerts;
pub mod delivery;
pub mod notifier;
pub mod objects;
pub mod payload;
pub mod receiver;

pub use delivery::{Delivery, DeliveryError, HttpClients, RetryPolicy, deliver};
pub use notifier::{Notifier, NotifierSettings};
pub use payload::{Endpoint, Notification, OutgoingRequest, PayloadError, Prepared, ProviderKind, UnknownProviderType, prepare};
