//! Scene plans: what the planner makes of a prompt.

use serde::{Deserialize, Serialize};

use crate::world::Scene;

pub use contract::Attr;

/// One planned scene: the canonical scene, its caption, and which attributes were guessed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlannedScene {
    pub scene: Scene,
    pub caption: String,
    pub guessed: Vec<Attr>,
}

/// The whole plan of a prompt, in scene order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plan {
    pub scenes: Vec<PlannedScene>,
}

/// Turns a prompt into scenes. Deterministic: the same prompt, scene count and seed give the
/// same plan. An external LLM can implement it later.
pub trait Planner: Send + Sync {
    fn plan(&self, prompt: &str, num_scenes: usize, seed: u64) -> Plan;
}
