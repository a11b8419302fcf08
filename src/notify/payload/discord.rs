//! The `discord` payload: Discord's own webhook JSON (`content`, `username`, one embed),
//! with mentions disabled.
//!
//! Discord refuses a message over any of its length limits rather than cutting it, so every
//! part is cut here to fit: the fields first, within the embed's total, and the message
//! (the embed's description) gets what is left.

use serde_json::{Value, json};

use super::{Draft, Endpoint, Notification, PayloadError, REPORTING_CONTROLLER, check_address, encode, truncate, username};

/// Discord's limits on a webhook message (characters).
mod limit {
    pub const CONTENT: usize = 2000;
    pub const TITLE: usize = 256;
    pub const DESCRIPTION: usize = 4096;
    pub const FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1024;
    pub const FOOTER: usize = 2048;
    /// Title, description, field names and values, footer and author together.
    pub const EMBED_TOTAL: usize = 6000;
}

pub(super) fn draft(endpoint: &Endpoint, n: &Notification) -> Result<Draft, PayloadError> {
    let kind = endpoint.kind;
    check_address(kind, &endpoint.address)?;
    Ok(Draft::Send { url: endpoint.address.clone(), body: encode(kind, &payload(endpoint, n))?, auth: Vec::new() })
}

fn payload(endpoint: &Endpoint, n: &Notification) -> Value {
    let e = &n.event;
    let title = truncate(&n.object(), limit::TITLE);
    let footer = truncate(REPORTING_CONTROLLER, limit::FOOTER);
    let mut budget = limit::EMBED_TOTAL.saturating_sub(title.chars().count() + footer.chars().count());
    // Discord refuses an empty field value.
    let mut fields = Vec::new();
    for (k, v) in n.facts().into_iter().take(limit::FIELDS) {
        let name = truncate(&k, limit::FIELD_NAME);
        let value = truncate(if v.is_empty() { "-" } else { &v }, limit::FIELD_VALUE);
        let size = name.chars().count() + value.chars().count();
        // Keep room for at least the start of the message.
        if size + 200 > budget {
            break;
        }
        budget -= size;
        fields.push(json!({ "name": name, "value": value, "inline": false }));
    }
    let description = truncate(&e.message, limit::DESCRIPTION.min(budget));
    let mut embed = json!({
        "title": title,
        "description": description,
        "color": if n.is_error() { 0xE74C3C } else { 0x2ECC71 },
        "fields": fields,
        "footer": { "text": footer },
    });
    if let Some(url) = &n.review_url {
        embed["url"] = json!(url);
    }
    if !e.time.is_empty() {
        embed["timestamp"] = json!(e.time);
    }
    json!({
        "username": username(endpoint),
        "content": truncate(&format!("{}: {}", e.reason, n.object()), limit::CONTENT),
        "embeds": [embed],
        // An event message is not a place to ping @everyone from.
        "allowed_mentions": { "parse": [] },
    })
}

#[cfg(test)]
mod tests {
    use super::super::ProviderKind;
    use super::super::tests::{body, event, send};
    use super::*;
    use crate::store::Severity;

    #[test]
    fn discord_stays_inside_its_limits() {
        let mut n = Notification::new(event(Severity::Info, "PlanApplied", None));
        n.event.message = "x".repeat(10_000);
        n.metadata = (0..40).map(|i| (format!("key{i:02}"), "v".repeat(2000))).collect();
        let b = body(&send(&Endpoint::new(ProviderKind::Discord, "https://discord.com/api/webhooks/1/abc"), &n));
        let embed = &b["embeds"][0];
        let fields = embed["fields"].as_array().unwrap();
        assert!(fields.len() <= 25);
        let total: usize = embed["title"].as_str().unwrap().chars().count()
            + embed["description"].as_str().unwrap().chars().count()
            + embed["footer"]["text"].as_str().unwrap().chars().count()
            + fields
                .iter()
                .map(|f| f["name"].as_str().unwrap().chars().count() + f["value"].as_str().unwrap().chars().count())
                .sum::<usize>();
        assert!(total <= 6000, "{total}");
        assert!(fields.iter().all(|f| f["value"].as_str().unwrap().chars().count() <= 1024));
        assert!(!embed["description"].as_str().unwrap().is_empty());
    }
}
