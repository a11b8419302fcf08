//! The `slack` payload: a message with one attachment, coloured `good` or `danger` by the
//! event's severity, for an incoming webhook or (with a token, sent as a bearer token)
//! `chat.postMessage`.
//!
//! Slack reads `&`, `<` and `>` in message text as markup (`<@user>`, `<url|text>`), so
//! event text is escaped and shown as written.

use serde_json::{Value, json};

use super::{Draft, Endpoint, Notification, PayloadError, REPORTING_CONTROLLER, check_address, encode, username};

pub(super) fn draft(endpoint: &Endpoint, n: &Notification) -> Result<Draft, PayloadError> {
    let kind = endpoint.kind;
    check_address(kind, &endpoint.address)?;
    let auth = endpoint.token.iter().filter(|t| !t.is_empty()).map(|t| ("Authorization".to_string(), format!("Bearer {t}"))).collect();
    Ok(Draft::Send { url: endpoint.address.clone(), body: encode(kind, &payload(endpoint, n))?, auth })
}

/// Slack reads `&`, `<` and `>` as control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn payload(endpoint: &Endpoint, n: &Notification) -> Value {
    let e = &n.event;
    let object = n.object();
    let first_line = e.message.lines().next().unwrap_or_default();
    let fields: Vec<Value> =
        n.facts().iter().map(|(k, v)| json!({ "title": k, "value": slack_escape(v), "short": v.len() <= 40 })).collect();
    let mut attachment = json!({
        "fallback": slack_escape(&format!("{object}: {} {first_line}", e.reason)),
        "color": if n.is_error() { "danger" } else { "good" },
        "author_name": object,
        "title": e.reason,
        "text": slack_escape(&e.message),
        "mrkdwn_in": ["text"],
        "fields": fields,
        "footer": REPORTING_CONTROLLER,
    });
    if let Some(url) = &n.review_url {
        attachment["title_link"] = json!(url);
    }
    let mut payload = json!({ "username": username(endpoint), "attachments": [attachment] });
    if let Some(channel) = endpoint.channel.as_deref().filter(|c| !c.is_empty()) {
        payload["channel"] = json!(channel);
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::super::ProviderKind;
    use super::super::tests::{body, event, send};
    use super::*;
    use crate::store::Severity;

    #[test]
    fn slack_escapes_control_characters_and_colours_by_severity() {
        let mut endpoint = Endpoint::new(ProviderKind::Slack, "https://hooks.slack.com/services/T0/B0/secret");
        endpoint.channel = Some("#ops".into());
        let b = body(&send(&endpoint, &Notification::new(event(Severity::Error, "ApplyFailed", None))));
        assert_eq!(b["channel"], "#ops");
        assert_eq!(b["username"], "driftless");
        let a = &b["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert_eq!(a["author_name"], "Terraform/infra/network");
        assert_eq!(a["text"], "plan plan-0123abc-aaaaaaaaaa: 1 to add &lt;b&gt; &amp; 0 to destroy");
    }
}
