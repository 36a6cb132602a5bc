//! Scene plans: what the planner makes of a prompt.

use serde::{Deserialize, Serialize};

use crate::world::Scene;

pub use contract::{Attr, PlanOrigin};

/// One planned scene: what the model is conditioned on, and for the built-in model the
/// canonical scene behind it and which attributes were guessed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlannedScene {
    /// The WORLD.md scene, for the built-in model; `None` for a free-form model's scene
    /// prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<Scene>,
    /// What the model is conditioned on: the scene's canonical caption ([`Scene::caption`])
    /// or a free-form model's scene prompt.
    pub caption: String,
    /// The attributes the prompt left open and the seed chose.
    pub guessed: Vec<Attr>,
}

/// The whole plan of a prompt, in scene order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plan {
    /// As many scenes as the task asked for.
    pub scenes: Vec<PlannedScene>,
    /// How the LLM planner fared, when one made (or failed to make) this plan; `None` from
    /// the rule planner alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<PlanOrigin>,
}

/// Turns a prompt into scenes. The rule planner is deterministic (the same prompt, scene count
/// and seed give the same plan); the LLM planner is as deterministic as its model at
/// temperature 0, and caches its answers.
pub trait Planner: Send + Sync {
    /// `num_scenes` scenes for `prompt`; open attributes are drawn from `seed`.
    fn plan(&self, prompt: &str, num_scenes: usize, seed: u64) -> Plan;

    /// Whether [`Planner::plan`] may wait long (on the network): the engine then calls it
    /// on planning threads of its own rather than on a timely worker.
    fn blocks(&self) -> bool {
        false
    }
}
