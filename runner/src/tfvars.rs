//! The variable values terraform reads: the RunSpec's variables rendered as a JSON variable
//! file (`*.auto.tfvars.json`). JSON, not HCL: terraform takes the values of a JSON variable
//! file literally, so a value holding `${...}` or `%{...}` is never evaluated as a template,
//! and nothing needs escaping by hand.
//!
//! The values arrive already bounded: they come from the RunSpec, which serde_json parses with
//! its nesting limit (128), and numbers no `f64` holds are refused there.

use driftless_core::contract::RunVariable;

/// The file name: `auto` so terraform loads it without a flag, `zz_` so it sorts after (and
/// so overrides) any `*.auto.tfvars.json` the module ships.
pub const FILE_NAME: &str = "zz_driftless.auto.tfvars.json";

/// The variable file for `vars`; of two variables with one name the later wins (the
/// controller resolves precedence before, so it hands over each name once).
pub fn render(vars: &[RunVariable]) -> Vec<u8> {
    let map: serde_json::Map<String, serde_json::Value> = vars.iter().map(|v| (v.name.clone(), v.value.clone())).collect();
    // A JSON object with string keys always encodes: `Display` of a value cannot fail.
    serde_json::Value::Object(map).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_in_values_are_written_as_literal_strings() {
        let vars = [RunVariable { name: "greeting".into(), value: json!("${var.x} %{ if true }y%{ endif }"), sensitive: false }];
        assert_eq!(String::from_utf8(render(&vars)).unwrap(), r#"{"greeting":"${var.x} %{ if true }y%{ endif }"}"#);
    }

    /// Found by tests/fuzz_inputs.rs: serde_json's default float parser was one unit in the
    /// last place off for this value, so terraform got another number than the RunSpec held.
    #[test]
    fn a_float_at_the_edge_of_precision_reaches_terraform_unchanged() {
        let value: serde_json::Value = serde_json::from_str("-2.083183995602091e273").unwrap();
        let vars = [RunVariable { name: "n".into(), value, sensitive: false }];
        assert_eq!(String::from_utf8(render(&vars)).unwrap(), r#"{"n":-2.083183995602091e+273}"#);
    }
}
