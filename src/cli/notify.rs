//! `driftless notify test PROVIDER`: proves a Provider works before an incident does, with
//! the same endpoint, payload and retries an alert would use.

use super::{CliError, Result};
use crate::api::Provider;
use crate::notify::notifier::endpoint;
use crate::notify::{HttpClients, Notification, RetryPolicy, deliver};
use crate::store::{Event, ObjectStore, Severity};

pub async fn test<S: ObjectStore>(store: &S, name: &str, namespace: &str) -> Result<()> {
    let provider = store
        .get::<Provider>(namespace, name)
        .await?
        .ok_or_else(|| CliError::Usage(format!("Provider {namespace}/{name} not found; see `driftless get providers -A`")))?;
    let endpoint = endpoint(store, &provider).await?.map_err(|why| CliError::Usage(format!("Provider {namespace}/{name}: {why}")))?;
    let event = Event {
        time: jiff::Timestamp::now().to_string(),
        kind: "Provider".into(),
        namespace: namespace.into(),
        name: name.into(),
        reason: "TestNotification".into(),
        severity: Severity::Info,
        message: format!("test notification from driftless through Provider {namespace}/{name}"),
        revision: None,
        plan_id: None,
        drift_id: None,
    };
    let notification = Notification { event, metadata: Default::default(), summary: None, review_url: None };
    let outcome = deliver(&HttpClients::default(), &endpoint, &notification, &RetryPolicy::default()).await;
    let recorded = outcome.as_ref().map(|_| ()).map_err(|e| e.to_string());
    crate::notify::objects::record_delivery(store, namespace, name, recorded).await?;
    match outcome {
        Ok(d) => {
            match &d.skipped {
                Some(why) => println!("Provider {namespace}/{name}: nothing sent ({why})"),
                None => println!("Provider {namespace}/{name}: test event delivered (attempts: {})", d.attempts),
            }
            Ok(())
        }
        Err(e) => Err(CliError::Usage(format!("Provider {namespace}/{name}: {e}"))),
    }
}
