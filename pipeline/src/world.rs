//! The world of `shared/WORLD.md`: the attribute vocabulary a scene is made of.
//!
//! Every other part of reel (planner, renderer, evaluator, model captions) speaks in these
//! types; their serde form is the lowercase English name used in canonical captions.

use serde::{Deserialize, Serialize};

macro_rules! attribute {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $(#[doc = concat!("`", $text, "`")] $variant),+ }

        impl $name {
            /// Every value, in WORLD.md order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word used for it in canonical captions.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

attribute!(
    /// Object colour.
    Color { Red = "red", Orange = "orange", Yellow = "yellow", Green = "green", Cyan = "cyan",
            Blue = "blue", Purple = "purple", White = "white" }
);
attribute!(
    /// Canvas colour.
    Background { Black = "black", Gray = "gray", Navy = "navy", Beige = "beige" }
);
attribute!(
    /// Object shape.
    Shape { Circle = "circle", Square = "square", Triangle = "triangle", Diamond = "diamond" }
);
attribute!(
    /// Object size at the start of the scene.
    Size { Small = "small", Medium = "medium", Large = "large" }
);
attribute!(
    /// What the object does over the scene.
    Motion { Left = "left", Right = "right", Up = "up", Down = "down", Grow = "grow",
             Shrink = "shrink", Still = "still" }
);

impl Color {
    /// sRGB, 0-255.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [230, 50, 50],
            Color::Orange => [245, 140, 30],
            Color::Yellow => [240, 220, 50],
            Color::Green => [50, 190, 80],
            Color::Cyan => [40, 200, 210],
            Color::Blue => [50, 90, 230],
            Color::Purple => [150, 70, 210],
            Color::White => [240, 240, 240],
        }
    }
}

impl Background {
    /// sRGB, 0-255.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Background::Black => [10, 10, 10],
            Background::Gray => [110, 110, 110],
            Background::Navy => [20, 30, 80],
            Background::Beige => [225, 210, 170],
        }
    }
}

impl Size {
    /// Bounding-box side as a fraction of the frame side.
    pub fn fraction(self) -> f32 {
        match self {
            Size::Small => 0.16,
            Size::Medium => 0.25,
            Size::Large => 0.34,
        }
    }
}

impl Motion {
    /// The phrase canonical captions use.
    pub fn phrase(self) -> &'static str {
        match self {
            Motion::Left => "moving left",
            Motion::Right => "moving right",
            Motion::Up => "moving up",
            Motion::Down => "moving down",
            Motion::Grow => "growing",
            Motion::Shrink => "shrinking",
            Motion::Still => "staying still",
        }
    }
}

/// One scene: one object on one canvas for the whole scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scene {
    /// The object's size at the start.
    pub size: Size,
    /// The object's colour.
    pub color: Color,
    /// The object's shape.
    pub shape: Shape,
    /// What the object does.
    pub motion: Motion,
    /// The canvas.
    pub background: Background,
}

impl Scene {
    /// `a {size} {color} {shape} {motion phrase} on a {background} background`.
    pub fn caption(&self) -> String {
        format!(
            "a {} {} {} {} on a {} background",
            self.size.name(),
            self.color.name(),
            self.shape.name(),
            self.motion.phrase(),
            self.background.name()
        )
    }
}

/// (colour, shape) pairs held out of training (model/world.py `HELD_OUT`).
pub const HELD_OUT: &[(Color, Shape)] = &[
    (Color::Red, Shape::Triangle),
    (Color::Cyan, Shape::Square),
    (Color::Yellow, Shape::Diamond),
    (Color::Purple, Shape::Circle),
];
