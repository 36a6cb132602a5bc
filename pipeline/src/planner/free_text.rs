//! The planner for a free-form model (Wan2.1): the prompt's own words, cut into scene
//! prompts, with no WORLD.md captions.
//!
//! A scene ends at a sentence's end (`.` `!` `?` followed by a space or the end, `。！？`), a
//! semicolon or a line break, and a new one begins at a connective that moves the story on
//! ("then", "after that", "next", "finally"; 然后, 接着, 之后, 随后, 最后); the connective
//! and the punctuation around it are dropped. One scene asked for: the whole prompt, as
//! written. More scenes than the prompt describes: the last one continues (the same prompt,
//! new noise). Fewer: the surplus joins the last scene, in order.

use crate::plan::{Plan, PlannedScene, Planner};

/// English connectives that start a new scene (matched as whole words, any case).
const CONNECTIVES: &[&str] = &[
    "and then",
    "after that",
    "afterwards",
    "then",
    "next",
    "finally",
];

/// Chinese connectives that start a new scene.
const CONNECTIVES_ZH: &[&str] = &["然后", "接着", "之后", "随后", "最后"];

/// Trimmed from both ends of a scene prompt.
fn is_filler(c: char) -> bool {
    c.is_whitespace() || ",，、;；:：".contains(c)
}

/// Splits prompts into free-text scene prompts; deterministic, no model.
///
/// ```
/// use pipeline::plan::Planner;
/// use pipeline::planner::FreeTextPlanner;
///
/// let plan = FreeTextPlanner.plan("A fox runs through snow, then it leaps over a log.", 2, 0);
/// let prompts: Vec<&str> = plan.scenes.iter().map(|s| s.caption.as_str()).collect();
/// assert_eq!(prompts, ["A fox runs through snow", "it leaps over a log."]);
/// assert!(plan.scenes.iter().all(|s| s.scene.is_none()));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FreeTextPlanner;

impl Planner for FreeTextPlanner {
    fn plan(&self, prompt: &str, num_scenes: usize, _seed: u64) -> Plan {
        let prompt = prompt.trim();
        let mut parts = if num_scenes <= 1 {
            vec![prompt.to_string()]
        } else {
            segments(prompt)
        };
        if parts.is_empty() {
            parts.push(prompt.to_string());
        }
        if parts.len() > num_scenes.max(1) {
            let rest = parts.split_off(num_scenes.max(1) - 1);
            parts.push(rest.join(" "));
        }
        while parts.len() < num_scenes {
            let last = parts.last().cloned().unwrap_or_default();
            parts.push(last);
        }
        scene_prompts_plan(parts)
    }
}

/// The plan of free-text scene prompts, in order: no WORLD.md scenes, nothing guessed.
pub(super) fn scene_prompts_plan(prompts: Vec<String>) -> Plan {
    Plan {
        scenes: prompts
            .into_iter()
            .map(|caption| PlannedScene {
                scene: None,
                caption,
                guessed: Vec::new(),
            })
            .collect(),
        origin: None,
    }
}

/// The prompt's scenes, in order, each trimmed of connectives and separators; none empty.
fn segments(prompt: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = prompt.char_indices().collect();
    let mut cuts = vec![0];
    for (k, &(i, c)) in chars.iter().enumerate() {
        let next = chars.get(k + 1).map(|&(_, n)| n);
        let ends_sentence = matches!(c, '.' | '!' | '?') && next.is_none_or(char::is_whitespace);
        if ends_sentence || "。！？;；\n".contains(c) {
            cuts.push(i + c.len_utf8());
        } else if starts_connective(prompt, i) {
            cuts.push(i);
        }
    }
    cuts.push(prompt.len());
    cuts.dedup();
    cuts.windows(2)
        .map(|w| strip_connective(prompt[w[0]..w[1]].trim_matches(is_filler)))
        .map(|s| s.trim_matches(is_filler).to_string())
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

/// Whether a connective starts at byte `i` (an English one as a whole word after a pause,
/// so "then" inside "strengthens" or "the next box" does not count).
fn starts_connective(prompt: &str, i: usize) -> bool {
    let rest = &prompt[i..];
    if CONNECTIVES_ZH.iter().any(|c| rest.starts_with(c)) {
        return true;
    }
    let before = prompt[..i].trim_end();
    let after_pause = before.is_empty() || before.ends_with([',', '，', ';', '；', ':']);
    let word_start = prompt[..i].ends_with(char::is_whitespace) || i == 0;
    after_pause
        && word_start
        && CONNECTIVES.iter().any(|c| {
            rest.get(..c.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(c))
                && rest[c.len()..]
                    .chars()
                    .next()
                    .is_none_or(|n| !n.is_alphanumeric())
        })
}

/// `s` without a leading connective.
fn strip_connective(s: &str) -> &str {
    for c in CONNECTIVES_ZH {
        if let Some(rest) = s.strip_prefix(c) {
            return rest;
        }
    }
    for c in CONNECTIVES {
        if s.get(..c.len()).is_some_and(|h| h.eq_ignore_ascii_case(c))
            && s[c.len()..]
                .chars()
                .next()
                .is_none_or(|n| !n.is_alphanumeric())
        {
            return &s[c.len()..];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(prompt: &str, n: usize) -> Vec<String> {
        FreeTextPlanner
            .plan(prompt, n, 0)
            .scenes
            .into_iter()
            .map(|s| s.caption)
            .collect()
    }

    #[test]
    fn one_scene_is_the_prompt_as_written() {
        let p = "A red fox runs through fresh snow at sunrise, then it leaps. 4K.";
        assert_eq!(prompts(p, 1), [p]);
    }

    #[test]
    fn scenes_break_at_sentences_and_connectives() {
        assert_eq!(
            prompts(
                "A cat sleeps on a sofa. Then it wakes up; finally it yawns",
                3
            ),
            ["A cat sleeps on a sofa.", "it wakes up", "it yawns"]
        );
        assert_eq!(
            prompts("一只猫在沙发上睡觉，然后它醒了，最后它打哈欠。", 3),
            ["一只猫在沙发上睡觉", "它醒了", "它打哈欠。"]
        );
        // Inside words and without a pause, connectives are plain words.
        assert_eq!(
            prompts("The wind strengthens and the next wave breaks", 2),
            [
                "The wind strengthens and the next wave breaks",
                "The wind strengthens and the next wave breaks"
            ]
        );
        assert_eq!(prompts("Version 2.5 of a robot walks", 2).len(), 2);
        assert_eq!(
            prompts("Version 2.5 of a robot walks", 2)[0],
            "Version 2.5 of a robot walks"
        );
    }

    #[test]
    fn the_scene_count_is_what_was_asked() {
        let p = "A boat sails. A storm comes. The boat sinks. Fish swim by.";
        assert_eq!(
            prompts(p, 2),
            [
                "A boat sails.",
                "A storm comes. The boat sinks. Fish swim by."
            ]
        );
        assert_eq!(
            prompts("A boat sails.", 3),
            ["A boat sails.", "A boat sails.", "A boat sails."]
        );
        assert_eq!(prompts("...", 2), ["...", "..."]);
    }
}
