//! The `msteams` payload: an Adaptive Card inside a `message`, the shape Teams workflow
//! webhooks take. The card lists the object, the reason, the message and the facts, with a
//! Review button when the notification has a review URL.

use serde_json::{Value, json};

use super::{Draft, Endpoint, Notification, PayloadError, check_address, encode};

pub(super) fn draft(endpoint: &Endpoint, n: &Notification) -> Result<Draft, PayloadError> {
    let kind = endpoint.kind;
    check_address(kind, &endpoint.address)?;
    Ok(Draft::Send { url: endpoint.address.clone(), body: encode(kind, &payload(n))?, auth: Vec::new() })
}

fn payload(n: &Notification) -> Value {
    let e = &n.event;
    let mut message = json!({ "type": "TextBlock", "text": e.message, "wrap": true });
    if n.is_error() {
        message["color"] = json!("Attention");
    }
    let facts: Vec<Value> = n.facts().iter().map(|(k, v)| json!({ "title": k, "value": v })).collect();
    let mut body = vec![
        json!({ "type": "TextBlock", "text": n.object(), "size": "Large", "weight": "Bolder", "wrap": true }),
        json!({ "type": "TextBlock", "text": e.reason, "weight": "Bolder", "spacing": "None", "isSubtle": true, "wrap": true }),
        message,
    ];
    if !facts.is_empty() {
        body.push(json!({ "type": "FactSet", "facts": facts }));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        // The newest version Teams renders everywhere.
        "version": "1.4",
        "msteams": { "width": "Full" },
        "body": body,
    });
    if let Some(url) = &n.review_url {
        card["actions"] = json!([{ "type": "Action.OpenUrl", "title": "Review", "url": url }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}
