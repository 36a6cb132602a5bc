//! The rule planner against shared/WORLD.md "How prompts name things": every case of
//! planner_examples.json (a copy of shared/planner_examples.json in fixtures/), then the
//! vocabulary, scene breaks, carrying, guessing and odd inputs.

use std::collections::HashSet;

use pipeline::plan::{Attr, Plan, Planner};
use pipeline::planner::RulePlanner;
use pipeline::world::{Background, Color, Motion, Scene, Shape, Size, HELD_OUT};
use serde::Deserialize;

fn plan(prompt: &str, n: usize, seed: u64) -> Plan {
    let p = RulePlanner.plan(prompt, n, seed);
    assert_eq!(p.scenes.len(), n, "{prompt:?}");
    for s in &p.scenes {
        assert_eq!(s.caption, s.scene.unwrap().caption());
    }
    p
}

fn one(prompt: &str) -> Scene {
    plan(prompt, 1, 3).scenes[0].scene.unwrap()
}

fn guessed(prompt: &str, n: usize, scene: usize) -> Vec<Attr> {
    plan(prompt, n, 3).scenes[scene].guessed.clone()
}

// ---- planner_examples.json ----

#[derive(Deserialize)]
struct Examples {
    cases: Vec<Example>,
}

#[derive(Deserialize)]
struct Example {
    prompt: String,
    num_scenes: usize,
    scenes: Vec<serde_json::Map<String, serde_json::Value>>,
}

const ATTRS: [(Attr, &str); 5] = [
    (Attr::Size, "size"),
    (Attr::Color, "color"),
    (Attr::Shape, "shape"),
    (Attr::Motion, "motion"),
    (Attr::Background, "background"),
];

/// The canonical name of an attribute of a scene.
fn value(s: &Scene, a: Attr) -> &'static str {
    match a {
        Attr::Size => s.size.name(),
        Attr::Color => s.color.name(),
        Attr::Shape => s.shape.name(),
        Attr::Motion => s.motion.name(),
        Attr::Background => s.background.name(),
    }
}

#[test]
fn every_planner_example_holds() {
    let examples: Examples =
        serde_json::from_str(include_str!("fixtures/planner_examples.json")).expect("examples");
    assert!(examples.cases.len() >= 9);
    for case in &examples.cases {
        // Per slot marked "?", the values drawn over many seeds.
        let mut drawn: Vec<HashSet<&str>> = vec![HashSet::new(); case.scenes.len() * 5];
        for seed in 0..24 {
            let p = plan(&case.prompt, case.num_scenes, seed);
            for (i, want) in case.scenes.iter().enumerate() {
                let got = &p.scenes[i];
                for (k, (attr, key)) in ATTRS.iter().enumerate() {
                    let want = want[*key].as_str().expect("string value");
                    let have = value(&got.scene.unwrap(), *attr);
                    let ctx = format!("{:?} scene {i} {key} (seed {seed})", case.prompt);
                    if want == "?" {
                        assert!(got.guessed.contains(attr), "{ctx}: not marked guessed");
                        drawn[i * 5 + k].insert(have);
                    } else if let Some(rest) = want.strip_prefix("same") {
                        let j = match rest.trim().strip_prefix("as scene ") {
                            Some(n) => n.parse::<usize>().expect("scene number") - 1,
                            None => i - 1,
                        };
                        assert_eq!(have, value(&p.scenes[j].scene.unwrap(), *attr), "{ctx}");
                    } else {
                        assert_eq!(have, want, "{ctx}");
                        assert!(
                            !got.guessed.contains(attr),
                            "{ctx}: named but marked guessed"
                        );
                    }
                }
            }
        }
        for (slot, values) in drawn.iter().enumerate() {
            let marked = case.scenes[slot / 5][ATTRS[slot % 5].1] == "?";
            assert!(
                !marked || values.len() >= 2,
                "{:?}: slot {slot} never varies",
                case.prompt
            );
        }
    }
}

// ---- determinism and guessing ----

#[test]
fn same_input_same_plan_and_seed_changes_guesses() {
    let prompts = [
        "测试视频",
        "a ball",
        "then then",
        "a red square sits. it moves",
        "",
    ];
    for prompt in prompts {
        for seed in [0, 1, u64::MAX] {
            assert_eq!(plan(prompt, 4, seed), plan(prompt, 4, seed));
        }
    }
    let plans: HashSet<String> = (0..32)
        .map(|seed| format!("{:?}", plan("nothing here", 3, seed)))
        .collect();
    assert!(plans.len() > 16, "guesses barely depend on the seed");
    // Named attributes do not depend on the seed.
    for seed in 0..16 {
        let p = plan(
            "a small red circle moving left on a black background",
            1,
            seed,
        );
        assert!(p.scenes[0].guessed.is_empty());
    }
}

#[test]
fn guessed_lists_exactly_what_is_open() {
    assert_eq!(guessed("a red circle", 1, 0), vec![Attr::Background]);
    assert_eq!(
        guessed("a circle on a gray background", 1, 0),
        vec![Attr::Color]
    );
    assert_eq!(
        guessed("something red", 1, 0),
        vec![Attr::Shape, Attr::Background]
    );
    assert_eq!(
        guessed("hello", 1, 0),
        vec![Attr::Color, Attr::Shape, Attr::Background]
    );
    // Carried guesses stay guessed; a named value in a later scene is not.
    let p = plan("something red. then a blue one moves left", 2, 5);
    assert_eq!(p.scenes[1].guessed, vec![Attr::Shape, Attr::Background]);
    assert_eq!(p.scenes[1].scene.unwrap().color, Color::Blue);
}

#[test]
fn guesses_avoid_held_out_pairs_but_named_pairs_stand() {
    for seed in 0..200 {
        assert_ne!(
            plan("a triangle", 1, seed).scenes[0].scene.unwrap().color,
            Color::Red
        );
        assert_ne!(
            plan("a cyan thing", 1, seed).scenes[0].scene.unwrap().shape,
            Shape::Square
        );
        let s = plan("zzz", 1, seed).scenes[0].scene.unwrap();
        assert!(
            !HELD_OUT.contains(&(s.color, s.shape)),
            "seed {seed}: {s:?}"
        );
    }
    let s = one("a red triangle");
    assert_eq!((s.color, s.shape), (Color::Red, Shape::Triangle));
}

#[test]
fn unnamed_direction_is_drawn_and_marked() {
    let mut seen = HashSet::new();
    for seed in 0..40 {
        let p = plan("a red ball moves", 1, seed);
        let m = p.scenes[0].scene.unwrap().motion;
        assert!(matches!(
            m,
            Motion::Left | Motion::Right | Motion::Up | Motion::Down
        ));
        assert!(p.scenes[0].guessed.contains(&Attr::Motion));
        seen.insert(m);
    }
    assert_eq!(seen.len(), 4);
    // A named direction beats the bare verb.
    assert_eq!(
        one("a red ball moves slowly to the left").motion,
        Motion::Left
    );
    assert_eq!(one("一个红色圆形移动").shape, Shape::Circle);
}

// ---- scene counts ----

#[test]
fn extra_scenes_continue_with_new_guessed_motions() {
    for seed in 0..50 {
        let p = plan("a big green box grows on a beige background", 5, seed);
        for k in 1..5 {
            let (prev, s) = (&p.scenes[k - 1].scene.unwrap(), &p.scenes[k].scene.unwrap());
            assert_ne!(prev.motion, s.motion, "seed {seed}");
            assert_eq!(
                (s.size, s.color, s.shape, s.background),
                (prev.size, prev.color, prev.shape, prev.background)
            );
            assert_eq!(p.scenes[k].guessed, vec![Attr::Motion]);
        }
    }
}

#[test]
fn fewer_scenes_keep_the_first_and_zero_is_empty() {
    let prompt = "a red ball moves up, then a blue box moves down; finally a green triangle grows";
    let p = plan(prompt, 1, 0);
    assert_eq!(p.scenes[0].scene.unwrap().color, Color::Red);
    let p = plan(prompt, 3, 0);
    let motions: Vec<Motion> = p.scenes.iter().map(|s| s.scene.unwrap().motion).collect();
    assert_eq!(motions, [Motion::Up, Motion::Down, Motion::Grow]);
    assert!(RulePlanner.plan(prompt, 0, 0).scenes.is_empty());
}

// ---- scene breaks ----

/// Number of scenes the prompt describes: extra scenes are the ones with a guessed motion.
fn described(prompt: &str) -> usize {
    let p = plan(prompt, 6, 11);
    p.scenes
        .iter()
        .take_while(|s| !s.guessed.contains(&Attr::Motion))
        .count()
}

#[test]
fn scene_breaks_in_both_languages() {
    let two = [
        "a red ball moves left then it grows",
        "a red ball moves left and then it grows",
        "a red ball moves left, after that it grows",
        "a red ball moves left. Next, it grows",
        "a red ball moves left, finally it grows",
        "a red ball moves left; it grows",
        "a red ball moves left! it grows",
        "a red ball moves left? it grows",
        "a red ball moves left\nit grows",
        "A red ball moves left. Then it grows.",
        "红色圆形向左移动然后变大",
        "红色圆形向左移动，接着变大",
        "红色圆形向左移动，最后变大",
        "红色圆形向左移动；变大",
        "红色圆形向左移动。变大。",
        "红色圆形向左移动！变大",
        "红色圆形向左移动，然后再变大",
    ];
    for prompt in two {
        assert_eq!(described(prompt), 2, "{prompt:?}");
        let p = plan(prompt, 2, 0);
        assert_eq!(
            p.scenes[1].scene.unwrap().motion,
            Motion::Grow,
            "{prompt:?}"
        );
        assert_eq!(p.scenes[1].scene.unwrap().color, Color::Red, "{prompt:?}");
    }
    let one_scene = [
        "a red ball, moving left, on a gray background",
        "红色圆形，向左移动，灰色背景",
        "a red ball next to nothing moves left",
        "a red ball moves left for 2.5 seconds",
        "a red ball moves left authentically",
        "a red ball moves left.",
        "a red ball moves left...",
    ];
    for prompt in one_scene {
        assert_eq!(described(prompt), 1, "{prompt:?}");
    }
    // Empty segments between breaks describe nothing.
    assert_eq!(
        described("a red ball moves left. . ; then. Then then it grows"),
        2
    );
    assert_eq!(described("a red ball. It's lovely. Then it grows."), 2);
}

// ---- vocabulary ----

/// A property the planned scene must have.
type Check = fn(&Scene) -> bool;

#[test]
fn english_synonyms() {
    let cases: &[(&str, Check)] = &[
        ("a ball", |s| s.shape == Shape::Circle),
        ("a disc", |s| s.shape == Shape::Circle),
        ("a dot", |s| s.shape == Shape::Circle),
        ("two spheres", |s| s.shape == Shape::Circle),
        ("a box", |s| s.shape == Shape::Square),
        ("some boxes", |s| s.shape == Shape::Square),
        ("a block", |s| s.shape == Shape::Square),
        ("a rhombus", |s| s.shape == Shape::Diamond),
        ("a diamond", |s| s.shape == Shape::Diamond),
        ("a pyramid", |s| s.shape == Shape::Triangle),
        ("it slides to the left", |s| s.motion == Motion::Left),
        ("it drifts leftward", |s| s.motion == Motion::Left),
        ("it goes left", |s| s.motion == Motion::Left),
        ("it travels from right to left", |s| {
            s.motion == Motion::Left
        }),
        ("it travels from left to right", |s| {
            s.motion == Motion::Right
        }),
        ("it moves from the left", |s| s.motion == Motion::Right),
        ("it heads towards the top", |s| s.motion == Motion::Up),
        ("it rises", |s| s.motion == Motion::Up),
        ("it floats upwards", |s| s.motion == Motion::Up),
        ("it falls", |s| s.motion == Motion::Down),
        ("it drops from the top", |s| s.motion == Motion::Down),
        ("it sinks", |s| s.motion == Motion::Down),
        ("it expands", |s| s.motion == Motion::Grow),
        ("it gets bigger", |s| s.motion == Motion::Grow),
        ("it grows bigger", |s| s.motion == Motion::Grow),
        ("it scales up", |s| s.motion == Motion::Grow),
        ("it contracts", |s| s.motion == Motion::Shrink),
        ("it gets smaller", |s| s.motion == Motion::Shrink),
        ("it shrinks", |s| s.motion == Motion::Shrink),
        ("it sits", |s| s.motion == Motion::Still),
        ("it rests", |s| s.motion == Motion::Still),
        ("it stays", |s| s.motion == Motion::Still),
        ("it doesn't move", |s| s.motion == Motion::Still),
        ("it doesn’t move", |s| s.motion == Motion::Still),
        ("it is stationary", |s| s.motion == Motion::Still),
        ("a ball on the left moves right", |s| {
            s.motion == Motion::Right
        }),
        ("a tiny ball", |s| s.size == Size::Small),
        ("a little ball", |s| s.size == Size::Small),
        ("a big ball", |s| s.size == Size::Large),
        ("a huge ball", |s| s.size == Size::Large),
        ("a medium-sized ball", |s| s.size == Size::Medium),
        ("a ball on a dark blue background", |s| {
            s.background == Background::Navy
        }),
        ("a ball on a grey background", |s| {
            s.background == Background::Gray
        }),
        ("a ball on a navy backdrop", |s| {
            s.background == Background::Navy
        }),
        ("a ball on a cream background", |s| {
            s.background == Background::Beige
        }),
        ("a ball on an off-white background", |s| {
            s.background == Background::Beige
        }),
        ("a crimson ball", |s| s.color == Color::Red),
        ("a reddish ball", |s| s.color == Color::Red),
        ("a turquoise ball", |s| s.color == Color::Cyan),
        ("a light blue ball", |s| s.color == Color::Cyan),
        ("a violet ball", |s| s.color == Color::Purple),
        ("a golden ball", |s| s.color == Color::Yellow),
        ("a navy ball", |s| s.color == Color::Blue),
        ("A RED CIRCLE MOVING LEFT", |s| {
            s.color == Color::Red && s.motion == Motion::Left
        }),
        ("A Big Blue Box Slides Right", |s| {
            *s == big_blue_box_right(s.background)
        }),
    ];
    for (prompt, check) in cases {
        let s = one(prompt);
        assert!(check(&s), "{prompt:?} -> {s:?}");
    }
}

fn big_blue_box_right(background: Background) -> Scene {
    Scene {
        size: Size::Large,
        color: Color::Blue,
        shape: Shape::Square,
        motion: Motion::Right,
        background,
    }
}

#[test]
fn words_match_whole_words_only() {
    // None of these names a colour or a shape of the world.
    for prompt in [
        "a bluebird",
        "a redwood",
        "a balloon",
        "a boxer",
        "a squarely dotted tiler",
        "greenery",
    ] {
        assert_eq!(
            guessed(prompt, 1, 0),
            vec![Attr::Color, Attr::Shape, Attr::Background],
            "{prompt:?}"
        );
    }
    // `left` in `leftover` is no motion; `then` in `authentic` is no break.
    assert_eq!(one("a leftover ball").motion, Motion::Still);
}

#[test]
fn chinese_vocabulary() {
    let colours = [
        ("红色", Color::Red),
        ("红", Color::Red),
        ("橙色", Color::Orange),
        ("黄色", Color::Yellow),
        ("绿色", Color::Green),
        ("青色", Color::Cyan),
        ("蓝色", Color::Blue),
        ("紫色", Color::Purple),
        ("白色", Color::White),
    ];
    for (word, c) in colours {
        assert_eq!(one(&format!("一个{word}圆形")).color, c, "{word}");
    }
    let shapes = [
        ("圆形", Shape::Circle),
        ("圆", Shape::Circle),
        ("球", Shape::Circle),
        ("正方形", Shape::Square),
        ("方块", Shape::Square),
        ("方形", Shape::Square),
        ("三角形", Shape::Triangle),
        ("菱形", Shape::Diamond),
    ];
    for (word, s) in shapes {
        assert_eq!(one(&format!("一个绿色{word}")).shape, s, "{word}");
    }
    let sizes = [
        ("大", Size::Large),
        ("小", Size::Small),
        ("中", Size::Medium),
        ("中等大小的", Size::Medium),
    ];
    for (word, z) in sizes {
        assert_eq!(
            plan(&format!("一个大方块。然后一个{word}绿色圆"), 2, 0).scenes[1]
                .scene
                .unwrap()
                .size,
            z,
            "{word}"
        );
    }
    let motions = [
        ("向左移动", Motion::Left),
        ("向左", Motion::Left),
        ("向右滑动", Motion::Right),
        ("往上飘", Motion::Up),
        ("向上移动", Motion::Up),
        ("向下移动", Motion::Down),
        ("下落", Motion::Down),
        ("变大", Motion::Grow),
        ("放大", Motion::Grow),
        ("变小", Motion::Shrink),
        ("缩小", Motion::Shrink),
        ("静止", Motion::Still),
        ("不动", Motion::Still),
        ("一动不动", Motion::Still),
    ];
    for (word, m) in motions {
        assert_eq!(
            plan(&format!("红色圆形向右移动，然后{word}"), 2, 0).scenes[1]
                .scene
                .unwrap()
                .motion,
            m,
            "{word}"
        );
    }
    let backgrounds = [
        ("黑色背景", Background::Black),
        ("灰色背景", Background::Gray),
        ("深蓝色背景", Background::Navy),
        ("藏青背景", Background::Navy),
        ("藏青色的背景", Background::Navy),
        ("米色背景", Background::Beige),
        ("蓝色背景", Background::Navy),
    ];
    for (words, b) in backgrounds {
        let s = one(&format!("{words}上一个黄色圆形"));
        assert_eq!((s.background, s.color), (b, Color::Yellow), "{words}");
    }
}

#[test]
fn chinese_characters_inside_other_words_do_not_match() {
    // 中 as "in", not medium; 大 in 大家 is no size; 方 in 方向 is no square.
    let p = plan("一个大红色方块。在画面中一个圆形", 2, 0);
    assert_eq!(p.scenes[1].scene.unwrap().size, Size::Large);
    assert_eq!(p.scenes[0].scene.unwrap().color, Color::Red);
    assert_eq!(
        guessed("大家好，方向感", 1, 0),
        vec![Attr::Color, Attr::Shape, Attr::Background]
    );
    assert_eq!(one("大家好").size, Size::Medium);
}

// ---- canvas or object ----

#[test]
fn colour_words_go_to_the_canvas_or_the_object() {
    let cases = [
        (
            "a white circle on a black background",
            Some(Color::White),
            Some(Background::Black),
        ),
        (
            "on a white background, a blue square",
            Some(Color::Blue),
            Some(Background::Beige),
        ),
        (
            "the background is gray and a red dot sits",
            Some(Color::Red),
            Some(Background::Gray),
        ),
        (
            "a blue ball on blue",
            Some(Color::Blue),
            Some(Background::Navy),
        ),
        (
            "black background, green triangle",
            Some(Color::Green),
            Some(Background::Black),
        ),
        (
            "a navy-colored background with an orange disc",
            Some(Color::Orange),
            Some(Background::Navy),
        ),
        (
            "背景是深蓝色，一个黄色菱形向上移动",
            Some(Color::Yellow),
            Some(Background::Navy),
        ),
        (
            "黑色背景红色圆形",
            Some(Color::Red),
            Some(Background::Black),
        ),
        (
            "在米色的背景上有一个白色的方块",
            Some(Color::White),
            Some(Background::Beige),
        ),
        (
            "背景为灰色，白色三角形",
            Some(Color::White),
            Some(Background::Gray),
        ),
        // A canvas colour the world lacks names neither the canvas nor the object.
        ("a circle on a red background", None, None),
        // An object colour the world lacks leaves the colour open.
        (
            "a black circle on a beige background",
            None,
            Some(Background::Beige),
        ),
    ];
    for (prompt, color, background) in cases {
        let p = plan(prompt, 1, 9);
        let s = &p.scenes[0];
        match color {
            Some(c) => assert_eq!(s.scene.unwrap().color, c, "{prompt:?}"),
            None => assert!(s.guessed.contains(&Attr::Color), "{prompt:?}"),
        }
        match background {
            Some(b) => assert_eq!(s.scene.unwrap().background, b, "{prompt:?}"),
            None => assert!(s.guessed.contains(&Attr::Background), "{prompt:?}"),
        }
    }
}

// ---- carrying ----

#[test]
fn omitted_attributes_carry_over() {
    let p = plan(
        "a small green triangle moves left. then it grows. finally it moves up",
        3,
        0,
    );
    for s in &p.scenes {
        assert_eq!(
            (
                s.scene.unwrap().size,
                s.scene.unwrap().color,
                s.scene.unwrap().shape
            ),
            (Size::Small, Color::Green, Shape::Triangle)
        );
    }
    let motions: Vec<Motion> = p.scenes.iter().map(|s| s.scene.unwrap().motion).collect();
    assert_eq!(motions, [Motion::Left, Motion::Grow, Motion::Up]);

    let p = plan(
        "a big red square moves left on a gray background, then a circle",
        2,
        0,
    );
    assert_eq!(
        p.scenes[1].scene.unwrap(),
        Scene {
            size: Size::Large,
            color: Color::Red,
            shape: Shape::Circle,
            motion: Motion::Left,
            background: Background::Gray
        }
    );
}

#[test]
fn a_background_named_once_holds_for_the_whole_prompt() {
    // Named late: the earlier scenes share it.
    let p = plan(
        "a red ball moves left, then it grows on a black background",
        2,
        0,
    );
    for s in &p.scenes {
        assert_eq!(s.scene.unwrap().background, Background::Black);
        assert!(s.guessed.is_empty());
    }
    // A sentence that only sets the canvas is no scene of its own.
    let p = plan(
        "Black background. A red ball moves left. Then it shrinks.",
        3,
        0,
    );
    assert_eq!(p.scenes[0].scene.unwrap().color, Color::Red);
    assert_eq!(p.scenes[1].scene.unwrap().motion, Motion::Shrink);
    assert!(p
        .scenes
        .iter()
        .all(|s| s.scene.unwrap().background == Background::Black));
    assert_eq!(
        plan("背景是灰色的。", 1, 0).scenes[0]
            .scene
            .unwrap()
            .background,
        Background::Gray
    );
    // A later scene may change it.
    let p = plan(
        "a red ball on black. then it sits on a beige background",
        2,
        0,
    );
    assert_eq!(p.scenes[1].scene.unwrap().background, Background::Beige);
}

// ---- odd inputs ----

#[test]
fn prompts_naming_nothing_still_plan() {
    let odd = [
        "",
        "   ",
        "测试视频",
        "hello world",
        "!!!",
        "🙂🙂🙂",
        "1234",
        "¿¡",
        "\u{200d}\u{fe0f}",
        "Ω≈ç√",
    ];
    for prompt in odd {
        let p = plan(prompt, 3, 42);
        let first = &p.scenes[0];
        assert_eq!(
            (first.scene.unwrap().size, first.scene.unwrap().motion),
            (Size::Medium, Motion::Still),
            "{prompt:?}"
        );
        assert_eq!(
            first.guessed,
            vec![Attr::Color, Attr::Shape, Attr::Background],
            "{prompt:?}"
        );
        assert!(p.scenes[1].guessed.contains(&Attr::Motion));
    }
}

#[test]
fn emoji_and_arrows() {
    let s = one("🔴 ➡️");
    assert_eq!(
        (s.color, s.shape, s.motion),
        (Color::Red, Shape::Circle, Motion::Right)
    );
    let s = one("a 🟦 falls");
    assert_eq!(
        (s.color, s.shape, s.motion),
        (Color::Blue, Shape::Square, Motion::Down)
    );
    let s = one("a big 🙂 purple 🔷 ↑ on grey");
    assert_eq!(
        (s.color, s.shape, s.motion, s.background),
        (Color::Purple, Shape::Diamond, Motion::Up, Background::Gray)
    );
}

#[test]
fn mixed_language_and_overlong_prompts() {
    let s = one("一个red circle向左移动");
    assert_eq!(
        (s.color, s.shape, s.motion),
        (Color::Red, Shape::Circle, Motion::Left)
    );
    let s = one("a blue 菱形 on 黑色背景");
    assert_eq!(
        (s.color, s.shape, s.background),
        (Color::Blue, Shape::Diamond, Background::Black)
    );

    let long = "a red ball moves left. then it grows. ".repeat(500);
    let p = plan(&long, 3, 1);
    let motions: Vec<Motion> = p.scenes.iter().map(|s| s.scene.unwrap().motion).collect();
    assert_eq!(motions, [Motion::Left, Motion::Grow, Motion::Left]);
    let noise = "lorem ipsum dolor 天地玄黄 ".repeat(2000);
    assert_eq!(plan(&noise, 2, 1).scenes.len(), 2);
}
