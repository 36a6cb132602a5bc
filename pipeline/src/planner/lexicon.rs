//! What the words of a prompt mean to the planner, and the lookup tables built from the
//! English ([`super::english`]) and Chinese ([`super::chinese`]) word lists.
//!
//! English is looked up by whole words (phrases of up to [`MAX_PHRASE_WORDS`] words, plural
//! and third-person `-s`/`-es` forms folded onto the listed form); Chinese has no spaces and
//! is looked up by the longest listed string at each position.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use crate::world::{Background, Color, Motion, Shape, Size};

/// An object colour word.
pub const fn obj(c: Color) -> Meaning {
    Meaning::Colour {
        object: Some(c),
        canvas: None,
    }
}

/// A colour word that names an object colour, or a canvas when used for the background.
pub const fn both(c: Color, b: Background) -> Meaning {
    Meaning::Colour {
        object: Some(c),
        canvas: Some(b),
    }
}

/// A colour word that only names a canvas.
pub const fn canvas(b: Background) -> Meaning {
    Meaning::Colour {
        object: None,
        canvas: Some(b),
    }
}

/// The meaning of one matched word or phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// A colour word: the object colour it names (if any) and the canvas it names when used
    /// for the background (`dark blue` is navy there, `white` is the light beige canvas).
    Colour {
        object: Option<Color>,
        canvas: Option<Background>,
    },
    Shape(Shape),
    /// Colour and shape at once (an emoji such as a red circle).
    Object(Color, Shape),
    Size(Size),
    /// Chinese `中`: medium only right before a colour or shape; elsewhere it means "in".
    BoundMedium,
    Motion(Motion),
    /// A verb of motion with no direction (`moves`, `slides`, `移动`).
    Moves,
    /// The canvas noun (`background`, `背景`).
    Canvas,
    /// Words that may stand between a canvas noun and its colour (`is`, `coloured`, `的`).
    Link,
    /// `on`, `against`: `on black` names the canvas.
    On,
    /// `a`, `an`, `the`: skipped when looking back for [`Meaning::On`].
    Article,
    /// A scene break (`then`, `after that`, `然后`).
    Break,
    /// Matched only so that its parts do not match alone (`next to`, `on the left`, `大家`).
    Filler,
}

/// Longest English phrase, in words.
pub const MAX_PHRASE_WORDS: usize = 4;
/// Longest Chinese entry, in characters.
pub const MAX_HAN_CHARS: usize = 6;

struct English {
    phrases: HashMap<String, Meaning>,
    /// Every word of every phrase: the forms that `-s` / `-es` endings are folded onto.
    words: HashSet<&'static str>,
}

static ENGLISH: LazyLock<English> = LazyLock::new(|| {
    let mut phrases = HashMap::new();
    let mut words = HashSet::new();
    for &(phrase, meaning) in super::english::ENTRIES {
        words.extend(phrase.split(' '));
        phrases.insert(phrase.to_owned(), meaning);
    }
    English { phrases, words }
});

static CHINESE: LazyLock<HashMap<&'static str, Meaning>> =
    LazyLock::new(|| super::chinese::ENTRIES.iter().copied().collect());

static SYMBOLS: LazyLock<HashMap<char, Meaning>> =
    LazyLock::new(|| super::chinese::SYMBOLS.iter().copied().collect());

/// The listed form of a lowercase English word: itself, or without a plural / third-person
/// ending when that form is listed (`boxes` -> `box`, `drifts` -> `drift`).
pub fn fold(word: &str) -> &str {
    let listed = |w: &str| ENGLISH.words.contains(w);
    if listed(word) {
        return word;
    }
    for ending in ["s", "es"] {
        if let Some(stem) = word.strip_suffix(ending) {
            if listed(stem) {
                return stem;
            }
        }
    }
    word
}

/// The meaning of an English phrase of folded words joined by single spaces.
pub fn english(phrase: &str) -> Option<Meaning> {
    ENGLISH.phrases.get(phrase).copied()
}

/// The meaning of a run of Chinese characters, if listed.
pub fn chinese(text: &str) -> Option<Meaning> {
    CHINESE.get(text).copied()
}

/// The meaning of a symbol character (arrows, coloured-shape emoji).
pub fn symbol(c: char) -> Option<Meaning> {
    SYMBOLS.get(&c).copied()
}
