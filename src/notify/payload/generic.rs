//! The `generic` and `generic-hmac` payloads: Flux's event JSON, posted to the address as
//! is, so receivers written for Flux's notification-controller read it unchanged.
//!
//! `generic-hmac` signs the exact body bytes with the token (`X-Signature: sha256=<hex>`),
//! which is why the body is encoded once, here, and never re-serialized before sending.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Draft, Endpoint, Notification, PayloadError, ProviderKind, REPORTING_CONTROLLER, check_address, encode, token};
use crate::api::{GROUP, VERSION};
use crate::store::Severity;

/// The request of both generic types; the signature header only for `generic-hmac`.
pub(super) fn draft(endpoint: &Endpoint, n: &Notification) -> Result<Draft, PayloadError> {
    let kind = endpoint.kind;
    check_address(kind, &endpoint.address)?;
    let body = encode(kind, &payload(n))?;
    let mut auth = Vec::new();
    if kind == ProviderKind::GenericHmac {
        let key = token(endpoint, "the HMAC key that signs each request")?;
        auth.push(("X-Signature".to_string(), format!("sha256={}", sign(key.as_bytes(), &body))));
    }
    Ok(Draft::Send { url: endpoint.address.clone(), body, auth })
}

/// Lower-case hex HMAC-SHA256 of `body` keyed with `key`.
fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this never fails.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn payload(n: &Notification) -> Value {
    let e = &n.event;
    json!({
        "involvedObject": {
            "kind": e.kind,
            "namespace": e.namespace,
            "name": e.name,
            "apiVersion": format!("{GROUP}/{VERSION}"),
        },
        "severity": severity(e.severity),
        "timestamp": e.time,
        "message": e.message,
        "reason": e.reason,
        "metadata": n.metadata(),
        "reportingController": REPORTING_CONTROLLER,
    })
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::tests::{event, send};
    use super::*;

    #[test]
    fn extra_headers_replace_defaults_but_not_the_signature() {
        let mut endpoint = Endpoint::new(ProviderKind::GenericHmac, "http://hook.example/in");
        endpoint.token = Some("key".into());
        endpoint.headers =
            BTreeMap::from([("content-type".into(), "application/cloudevents+json".into()), ("x-signature".into(), "forged".into())]);
        let r = send(&endpoint, &Notification::new(event(Severity::Info, "PlanApplied", None)));
        assert_eq!(r.header("Content-Type"), Some("application/cloudevents+json"));
        assert_eq!(r.header("x-signature"), Some(format!("sha256={}", sign(b"key", &r.body)).as_str()));
        assert_eq!(r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-type")).count(), 1);
    }
}
