//! Secret values as text, for the one place each is used; never for display.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

/// A Secret's values as text (`data` decoded, `stringData` merged over it). The error is the
/// key whose value is not UTF-8.
pub fn secret_strings(secret: &Secret) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in secret.data.clone().unwrap_or_default() {
        out.insert(k.clone(), String::from_utf8(v.0).map_err(|_| k)?);
    }
    out.extend(secret.string_data.clone().unwrap_or_default());
    Ok(out)
}
