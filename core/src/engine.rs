//! The engine that runs a module: HashiCorp's `terraform` or OpenTofu's `tofu`. Both take the
//! same CLI, module language, `-json` streams, plan JSON and state, so the runner drives them
//! alike; what differs is the binary, the name messages give it, and the registry an
//! unqualified provider source (`hashicorp/null`) resolves to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// HashiCorp Terraform (`terraform`).
    Terraform,
    /// OpenTofu (`tofu`).
    Tofu,
}

impl Engine {
    /// The order a runner tries the engines in when the object chooses none: OpenTofu first.
    /// tofu-controller, whose Terraform objects driftless reads, runs OpenTofu, so its users
    /// get the engine they had; the runner image's default engine is OpenTofu for the same
    /// reason. A runner with only terraform keeps running terraform.
    pub const PREFERENCE: [Engine; 2] = [Engine::Tofu, Engine::Terraform];

    /// The command's name: what is looked up on PATH and what messages call it.
    pub fn command(self) -> &'static str {
        match self {
            Engine::Terraform => "terraform",
            Engine::Tofu => "tofu",
        }
    }

    /// The engine's product name, for prose ("OpenTofu 1.10.10").
    pub fn product(self) -> &'static str {
        match self {
            Engine::Terraform => "Terraform",
            Engine::Tofu => "OpenTofu",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.command())
    }
}

/// Whether terraform (and OpenTofu) loads a var file of this name from the module directory
/// by itself: `terraform.tfvars`, `*.auto.tfvars` and their `.json` forms.
pub fn is_auto_var_file(name: &str) -> bool {
    matches!(name, "terraform.tfvars" | "terraform.tfvars.json") || name.ends_with(".auto.tfvars") || name.ends_with(".auto.tfvars.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_is_written_as_its_command() {
        for engine in Engine::PREFERENCE {
            assert_eq!(serde_json::to_value(engine).unwrap(), engine.command());
            assert_eq!(serde_json::from_value::<Engine>(engine.command().into()).unwrap(), engine);
        }
        assert!(serde_json::from_value::<Engine>("opentofu".into()).is_err());
    }
}
