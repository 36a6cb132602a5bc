//! The rule-based planner: English or Simplified Chinese prompt -> canonical scenes.
//!
//! It implements [`Planner`] (the engine's first dataflow stage calls it) following
//! shared/WORLD.md "How prompts name things": `lexer` cuts the prompt into scene segments of
//! matched words, `mention` reads what each segment names, and this module fills the rest:
//! attributes a scene leaves out carry over from the previous scene; in the first scene size
//! defaults to medium and motion to still, while colour, shape and background are drawn from
//! the seed (`draw`) and marked guessed. A background named only in a later scene also holds
//! for the scenes before it (one canvas is what such prompts mean). Extra scenes continue the
//! last object with new, guessed motions; surplus described scenes are dropped from the end.
//!
//! [`LlmPlanner`] (`llm`) asks an OpenAI-compatible model what each scene names instead of
//! `lexer` and `mention`, and fills the rest by the same rules; it falls back to this planner.
//!
//! [`FreeTextPlanner`] (`free_text`) is the planner for a free-form model (Wan2.1): it cuts the
//! prompt into scene prompts in its own words, with no WORLD.md scenes.

mod chinese;
mod draw;
mod english;
mod free_text;
mod lexer;
mod lexicon;
mod llm;
mod mention;

pub use free_text::FreeTextPlanner;
pub use llm::{LlmConfig, LlmPlanner};
use mention::{Mention, MotionWord};

use crate::plan::{Attr, Plan, PlannedScene, Planner};
use crate::world::{Background, Color, Motion, Scene, Shape, Size, HELD_OUT};

/// The built-in planner: deterministic rules, no model.
///
/// ```
/// use pipeline::plan::{Attr, Planner};
/// use pipeline::planner::RulePlanner;
/// use pipeline::world::{Color, Motion, Shape, Size};
///
/// let plan = RulePlanner.plan("a small red circle moving left, then it grows", 3, 7);
/// let [first, second, third] = &plan.scenes[..] else { panic!("three scenes") };
/// let (one, two) = (first.scene.unwrap(), second.scene.unwrap());
/// assert_eq!(
///     (one.size, one.color, one.shape, one.motion),
///     (Size::Small, Color::Red, Shape::Circle, Motion::Left)
/// );
/// // The second scene names only its motion: the object carries over.
/// assert_eq!(two.motion, Motion::Grow);
/// assert_eq!(two.color, Color::Red);
/// // No background named: drawn from the seed, marked guessed, the same in every scene.
/// assert!(first.guessed.contains(&Attr::Background));
/// assert_eq!(two.background, one.background);
/// // A third scene the prompt does not describe continues the object with a guessed motion.
/// assert!(third.guessed.contains(&Attr::Motion));
/// assert_eq!(first.caption, one.caption());
/// // Deterministic: the same prompt, count and seed give the same plan.
/// assert_eq!(plan, RulePlanner.plan("a small red circle moving left, then it grows", 3, 7));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RulePlanner;

impl Planner for RulePlanner {
    fn plan(&self, prompt: &str, num_scenes: usize, seed: u64) -> Plan {
        fill(&described_scenes(prompt), num_scenes, seed)
    }
}

/// The plan of `num_scenes` scenes from what the described scenes name: the first
/// `num_scenes` of them, open attributes carried or drawn from `seed`, extra scenes continuing
/// the last object.
fn fill(mentions: &[Mention], num_scenes: usize, seed: u64) -> Plan {
    let mentions = &mentions[..mentions.len().min(num_scenes)];
    let mut scenes: Vec<Draft> = Vec::with_capacity(num_scenes);
    for (i, m) in mentions.iter().enumerate() {
        let next = Draft::from_mention(m, scenes.last(), seed, i);
        scenes.push(next);
    }
    while scenes.len() < num_scenes {
        let next = match scenes.last() {
            Some(last) => last.continued(seed, scenes.len()),
            None => Draft::from_mention(&Mention::default(), None, seed, 0),
        };
        scenes.push(next);
    }
    Plan {
        scenes: scenes.iter().map(Draft::planned).collect(),
        origin: None,
    }
}

/// The scenes a prompt describes, at least one.
fn described_scenes(prompt: &str) -> Vec<Mention> {
    let mut out: Vec<Mention> = Vec::new();
    // A segment that only sets the canvas lends it to the next scene (or the last one).
    let mut pending_background = None;
    for m in lexer::segments(prompt).iter().map(|s| mention::read(s)) {
        if m.only_background() {
            pending_background = m.background;
        } else if !m.is_empty() {
            let background = m.background.or(pending_background.take());
            out.push(Mention { background, ..m });
        }
    }
    match out.last_mut() {
        Some(last) => last.background = last.background.or(pending_background),
        None => out.push(Mention {
            background: pending_background,
            ..Mention::default()
        }),
    }
    share_first_background(&mut out);
    out
}

/// Scenes before the first named background share it (carrying does the rest).
fn share_first_background(scenes: &mut [Mention]) {
    let first_named = scenes.iter().find_map(|m| m.background);
    if let Some(first) = scenes.first_mut() {
        first.background = first.background.or(first_named);
    }
}

/// A value and whether it was drawn from the seed.
#[derive(Clone, Copy, Debug)]
struct Slot<T> {
    value: T,
    guessed: bool,
}

impl<T> Slot<T> {
    fn named(value: T) -> Self {
        Slot {
            value,
            guessed: false,
        }
    }
    fn guess(value: T) -> Self {
        Slot {
            value,
            guessed: true,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Draft {
    size: Slot<Size>,
    color: Slot<Color>,
    shape: Slot<Shape>,
    motion: Slot<Motion>,
    background: Slot<Background>,
}

const DIRECTIONS: [Motion; 4] = [Motion::Left, Motion::Right, Motion::Up, Motion::Down];

impl Draft {
    /// Scene `index` from what it names, the previous scene, and the seed.
    fn from_mention(m: &Mention, prev: Option<&Draft>, seed: u64, index: usize) -> Draft {
        let size = choose(m.size, prev.map(|p| p.size), || Slot::named(Size::Medium));
        let background = choose(m.background, prev.map(|p| p.background), || {
            Slot::guess(draw::pick(Background::ALL, seed, index, Attr::Background))
        });
        let motion = match m.motion {
            Some(MotionWord::Named(x)) => Slot::named(x),
            Some(MotionWord::Unnamed) => {
                Slot::guess(draw::pick(&DIRECTIONS, seed, index, Attr::Motion))
            }
            None => prev.map_or(Slot::named(Motion::Still), |p| p.motion),
        };
        // Guessed colours and shapes avoid the held-out pairs: a guess should not land on a
        // combination the model never saw.
        let shape_known = m.shape.map(Slot::named).or(prev.map(|p| p.shape));
        let color = choose(m.color, prev.map(|p| p.color), || {
            let options: Vec<Color> = Color::ALL
                .iter()
                .copied()
                .filter(|&c| shape_known.is_none_or(|s| !HELD_OUT.contains(&(c, s.value))))
                .collect();
            Slot::guess(draw::pick(&options, seed, index, Attr::Color))
        });
        let shape = shape_known.unwrap_or_else(|| {
            let options: Vec<Shape> = Shape::ALL
                .iter()
                .copied()
                .filter(|&s| !HELD_OUT.contains(&(color.value, s)))
                .collect();
            Slot::guess(draw::pick(&options, seed, index, Attr::Shape))
        });
        Draft {
            size,
            color,
            shape,
            motion,
            background,
        }
    }

    /// The same object in scene `index`, doing something new (a guessed motion).
    fn continued(&self, seed: u64, index: usize) -> Draft {
        let options: Vec<Motion> = [DIRECTIONS.as_slice(), &[Motion::Grow, Motion::Shrink]]
            .concat()
            .into_iter()
            .filter(|&x| x != self.motion.value)
            .collect();
        Draft {
            motion: Slot::guess(draw::pick(&options, seed, index, Attr::Motion)),
            ..*self
        }
    }

    fn planned(&self) -> PlannedScene {
        let scene = Scene {
            size: self.size.value,
            color: self.color.value,
            shape: self.shape.value,
            motion: self.motion.value,
            background: self.background.value,
        };
        let flags = [
            (Attr::Size, self.size.guessed),
            (Attr::Color, self.color.guessed),
            (Attr::Shape, self.shape.guessed),
            (Attr::Motion, self.motion.guessed),
            (Attr::Background, self.background.guessed),
        ];
        PlannedScene {
            caption: scene.caption(),
            scene: Some(scene),
            guessed: flags.iter().filter(|f| f.1).map(|f| f.0).collect(),
        }
    }
}

/// Named in this scene, else carried from the previous one, else the first-scene default.
fn choose<T>(
    named: Option<T>,
    carried: Option<Slot<T>>,
    first: impl FnOnce() -> Slot<T>,
) -> Slot<T> {
    named.map(Slot::named).or(carried).unwrap_or_else(first)
}
