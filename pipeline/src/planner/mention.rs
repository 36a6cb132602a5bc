//! One segment's terms -> what that scene names.
//!
//! A colour names the canvas when a canvas noun follows it (`black background`, `黑色背景`),
//! when it follows an otherwise colourless canvas noun through linking words only
//! (`the background is black`, `背景是黑色`), or after `on` with no shape or size after it
//! (`on black`); otherwise it names the object. Within a segment the first value of each
//! attribute wins; a directionless verb (`moves`) only counts when no motion is named.

use super::lexer::Item;
use super::lexicon::Meaning;
use crate::world::{Background, Color, Motion, Shape, Size};

/// How a segment names the motion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MotionWord {
    Named(Motion),
    /// A verb of motion with no direction: the direction is drawn from the seed.
    Unnamed,
}

/// What one segment names; `None` where it says nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mention {
    pub size: Option<Size>,
    pub color: Option<Color>,
    pub shape: Option<Shape>,
    pub motion: Option<MotionWord>,
    pub background: Option<Background>,
}

impl Mention {
    /// Whether the segment only sets the canvas (`On a black background.`): it then describes
    /// no scene of its own and lends its background to a neighbour.
    pub fn only_background(&self) -> bool {
        self.background.is_some()
            && self.size.is_none()
            && self.color.is_none()
            && self.shape.is_none()
            && self.motion.is_none()
    }

    /// Whether the segment names anything at all.
    pub fn is_empty(&self) -> bool {
        *self == Mention::default()
    }
}

/// What a segment names.
pub fn read(items: &[Item]) -> Mention {
    let mut m = Mention::default();
    let mut unnamed_motion = false;
    let mut claimed_canvas = vec![false; items.len()];
    for (i, item) in items.iter().enumerate() {
        let Item::Term(meaning) = *item else { continue };
        match meaning {
            Meaning::Colour { object, canvas } => {
                if let Some(noun) = canvas_of_colour(items, i, &claimed_canvas) {
                    claimed_canvas[noun] = true;
                    m.background = m.background.or(canvas);
                } else if m.color.is_none() {
                    m.color = object;
                }
            }
            Meaning::Shape(s) => m.shape = m.shape.or(Some(s)),
            Meaning::Object(c, s) => {
                m.color = m.color.or(Some(c));
                m.shape = m.shape.or(Some(s));
            }
            Meaning::Size(s) => m.size = m.size.or(Some(s)),
            Meaning::BoundMedium => {
                if matches!(
                    next_term(items, i),
                    Some(Meaning::Colour { .. } | Meaning::Shape(_))
                ) {
                    m.size = m.size.or(Some(Size::Medium));
                }
            }
            Meaning::Motion(x) => m.motion = m.motion.or(Some(MotionWord::Named(x))),
            Meaning::Moves => unnamed_motion = true,
            Meaning::Canvas
            | Meaning::Link
            | Meaning::On
            | Meaning::Article
            | Meaning::Break
            | Meaning::Filler => {}
        }
    }
    if unnamed_motion && m.motion.is_none() {
        m.motion = Some(MotionWord::Unnamed);
    }
    m
}

/// If the colour at `i` names the canvas, the position of the canvas noun it belongs to
/// (or `i` itself for `on black`, which has none).
fn canvas_of_colour(items: &[Item], i: usize, claimed: &[bool]) -> Option<usize> {
    // `black background`, `black-coloured background`, `黑色的背景`.
    let ahead = items[i + 1..]
        .iter()
        .position(|it| *it != Item::Term(Meaning::Link))
        .map(|k| i + 1 + k);
    if let Some(j) = ahead {
        if items[j] == Item::Term(Meaning::Canvas) && !claimed[j] {
            return Some(j);
        }
    }
    // `background is black`, `背景是黑色`: the noun must not already have its colour, so that
    // in `黑色背景红色圆形` the red stays with the circle.
    let behind = items[..i]
        .iter()
        .rposition(|it| *it != Item::Term(Meaning::Link));
    if let Some(j) = behind {
        if items[j] == Item::Term(Meaning::Canvas) && !claimed[j] {
            return Some(j);
        }
    }
    // `on black`, `against a grey`: `on` before it and no object word after it.
    let before = items[..i]
        .iter()
        .rposition(|it| *it != Item::Term(Meaning::Article));
    let names_object_next = matches!(
        next_term(items, i),
        Some(Meaning::Shape(_) | Meaning::Size(_) | Meaning::Colour { .. } | Meaning::Object(..))
    );
    if before.is_some_and(|j| items[j] == Item::Term(Meaning::On)) && !names_object_next {
        return Some(i);
    }
    None
}

/// The item right after `i`, if it is a term.
fn next_term(items: &[Item], i: usize) -> Option<Meaning> {
    match items.get(i + 1) {
        Some(Item::Term(m)) => Some(*m),
        _ => None,
    }
}
