//! Scene plans: what the planner makes of a prompt.

use serde::{Deserialize, Serialize};

use crate::world::Scene;

pub use contract::Attr;

/// One planned scene: the canonical scene, its caption, and which attributes were guessed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlannedScene {
    /// The scene.
    pub scene: Scene,
    /// Its canonical caption ([`Scene::caption`]), what the model is conditioned on.
    pub caption: String,
    /// The attributes the prompt left open and the seed chose.
    pub guessed: Vec<Attr>,
}

/// The whole plan of a prompt, in scene order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plan {
    /// As many scenes as the task asked for.
    pub scenes: Vec<PlannedScene>,
}

/// Turns a prompt into scenes. Deterministic: the same prompt, scene count and seed give the
/// same plan. An external LLM can implement it later.
pub trait Planner: Send + Sync {
    /// `num_scenes` scenes for `prompt`; open attributes are drawn from `seed`.
    fn plan(&self, prompt: &str, num_scenes: usize, seed: u64) -> Plan;
}
