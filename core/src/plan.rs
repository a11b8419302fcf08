//! The counts every plan reports, whatever made it (terraform, a server-side dry run, helm).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Add/change/destroy counts of a plan.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    pub add: u32,
    pub change: u32,
    pub destroy: u32,
}

impl PlanSummary {
    pub fn is_empty(&self) -> bool {
        self.add == 0 && self.change == 0 && self.destroy == 0
    }
}

impl std::fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} to add, {} to change, {} to destroy", self.add, self.change, self.destroy)
    }
}
