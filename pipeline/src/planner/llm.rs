//! The LLM planner: an OpenAI-compatible chat endpoint (llama.cpp's server, vLLM, Ollama,
//! OpenAI) reads what each scene of a prompt names; the rule planner's filling does the rest.
//!
//! One request (`stream: false`, temperature 0) asks for exactly `num_scenes` scenes as JSON,
//! each attribute a value of the world or `null` where the prompt leaves it open; the
//! `response_format` is a JSON schema built from [`crate::world`]'s values (strict), or a bare
//! JSON object once the endpoint has refused schemas with a 400. The answer is checked against
//! the world; an invalid one is asked again once, with what was wrong. The open (`null`)
//! attributes are then filled as [`RulePlanner`] fills what a prompt leaves out: carried over
//! from the previous scene, first-scene defaults, or drawn from the seed and marked guessed.
//!
//! For a free-form model (Wan2.1, [`LlmPlanner::free_form`]) the model writes each scene's
//! prompt instead: the schema asks for `num_scenes` strings, each checked to be non-blank and
//! within the API's prompt length, and [`FreeTextPlanner`] is the fallback.
//!
//! Whatever goes wrong (no answer within the timeout, which bounds all requests of one plan
//! together; an error status; invalid output twice) the rule planner answers, and the plan's
//! [`PlanOrigin`] says why (logged at warn too). Answers are cached by prompt and scene count
//! (the seed only fills the open attributes, so it is not part of the key).
//! `reel_planner_outcomes_total{outcome}` counts the outcomes.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde_json::{json, Map, Value};

use super::free_text::scene_prompts_plan;
use super::mention::{Mention, MotionWord};
use super::{fill, share_first_background, FreeTextPlanner, RulePlanner};
use crate::plan::{Plan, PlanOrigin, Planner};
use crate::world::{Background, Color, Motion, Shape, Size};

/// Plans kept by (prompt, scene count).
const CACHE_SIZE: usize = 1024;

/// How much of an error body a reason quotes.
const QUOTED_BODY: usize = 200;

/// Where and how the LLM planner asks.
#[derive(Clone)]
pub struct LlmConfig {
    /// The endpoint: a base URL such as `http://127.0.0.1:8080/v1` (`/chat/completions` is
    /// appended) or the full chat-completions URL.
    pub url: String,
    /// The model to ask (`model` of the request).
    pub model: String,
    /// Most time one plan may wait on the endpoint, retry included; then the rule planner
    /// answers.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer` when set.
    pub api_key: Option<String>,
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Plans with an LLM, falling back to [`RulePlanner`] (or, for a free-form model,
/// [`FreeTextPlanner`]). Its [`Planner::plan`] blocks on the network (up to
/// [`LlmConfig::timeout`]), so the engine runs it off the timely workers.
pub struct LlmPlanner {
    config: LlmConfig,
    /// What the model is asked for.
    scheme: Scheme,
    endpoint: String,
    client: reqwest::blocking::Client,
    /// False once the endpoint refused a JSON schema: ask for a JSON object instead.
    json_schema: AtomicBool,
    cache: Mutex<LruCache<(String, usize), Answer>>,
}

/// What the model is asked for, by the kind of model served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    /// WORLD.md attributes per scene (the built-in model).
    World,
    /// A prompt per scene, in free text (a free-form model).
    FreeText,
}

/// A valid answer: what each scene names, or each scene's prompt.
#[derive(Clone, Debug)]
enum Answer {
    World(Vec<Mention>),
    FreeText(Vec<String>),
}

/// Why the LLM's plan was not used.
#[derive(Debug)]
enum Failure {
    Timeout,
    Invalid(String),
    Error(String),
}

impl Failure {
    fn outcome(&self) -> &'static str {
        match self {
            Failure::Timeout => "fallback_timeout",
            Failure::Invalid(_) => "fallback_invalid",
            Failure::Error(_) => "fallback_error",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LlmPlanner {
    /// A planner of WORLD.md scenes (the built-in model) asking `config.url`; fails only when
    /// the HTTP client cannot be built.
    pub fn new(config: LlmConfig) -> anyhow::Result<LlmPlanner> {
        LlmPlanner::with_scheme(config, Scheme::World)
    }

    /// A planner of free-text scene prompts (a free-form model such as Wan2.1) asking
    /// `config.url`; fails only when the HTTP client cannot be built.
    pub fn free_form(config: LlmConfig) -> anyhow::Result<LlmPlanner> {
        LlmPlanner::with_scheme(config, Scheme::FreeText)
    }

    fn with_scheme(config: LlmConfig, scheme: Scheme) -> anyhow::Result<LlmPlanner> {
        let base = config.url.trim_end_matches('/');
        let endpoint = if base.ends_with("/chat/completions") {
            base.to_owned()
        } else {
            format!("{base}/chat/completions")
        };
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(config.timeout)
            .build()?;
        Ok(LlmPlanner {
            config,
            scheme,
            endpoint,
            client,
            json_schema: AtomicBool::new(true),
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_SIZE).expect("non-zero"),
            )),
        })
    }

    /// What each of the `n` scenes of `prompt` names (or, free-form, each scene's prompt),
    /// asked of the model (retried once when invalid), all within the timeout.
    fn ask(&self, prompt: &str, n: usize) -> Result<Answer, Failure> {
        let deadline = Instant::now() + self.config.timeout;
        let system = match self.scheme {
            Scheme::World => instructions(n),
            Scheme::FreeText => free_text_instructions(n),
        };
        let mut messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": prompt}),
        ];
        let mut attempt = 1;
        loop {
            let content = self.complete(&messages, n, deadline)?;
            let answer = match self.scheme {
                Scheme::World => read_answer(&content, n).map(Answer::World),
                Scheme::FreeText => read_free_text(&content, n).map(Answer::FreeText),
            };
            match answer {
                Ok(answer) => return Ok(answer),
                Err(why) if attempt == 1 => {
                    tracing::debug!(why, "llm planner: invalid answer, asking again");
                    let rule = match self.scheme {
                        Scheme::World => "every value one of the allowed values or null",
                        Scheme::FreeText => "every prompt a non-empty string",
                    };
                    messages.push(json!({"role": "assistant", "content": content}));
                    messages.push(json!({"role": "user", "content": format!(
                        "That answer is invalid: {why}. Answer again with JSON only, exactly \
                         {n} scenes, {rule}."
                    )}));
                    attempt += 1;
                }
                Err(why) => return Err(Failure::Invalid(why)),
            }
        }
    }

    /// The assistant's message content for `messages`.
    fn complete(&self, messages: &[Value], n: usize, deadline: Instant) -> Result<String, Failure> {
        loop {
            let with_schema = self.json_schema.load(Ordering::Relaxed);
            let format = if with_schema {
                let schema = match self.scheme {
                    Scheme::World => schema(n),
                    Scheme::FreeText => free_text_schema(n),
                };
                json!({"type": "json_schema", "json_schema": {
                    "name": "scene_plan", "schema": schema, "strict": true,
                }})
            } else {
                json!({"type": "json_object"})
            };
            let body = json!({
                "model": self.config.model,
                "messages": messages,
                "temperature": 0,
                "stream": false,
                "response_format": format,
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Timeout);
            }
            let mut request = self.client.post(&self.endpoint).timeout(left).json(&body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            let transport = |e: reqwest::Error| {
                if e.is_timeout() || Instant::now() >= deadline {
                    Failure::Timeout
                } else {
                    Failure::Error(format!("request failed: {e}"))
                }
            };
            let response = request.send().map_err(transport)?;
            let status = response.status();
            let text = response.text().map_err(transport)?;
            if status == reqwest::StatusCode::BAD_REQUEST && with_schema {
                tracing::info!(
                    body = quote(&text),
                    "llm planner: the endpoint refused a JSON schema; asking for a JSON object"
                );
                self.json_schema.store(false, Ordering::Relaxed);
                continue;
            }
            if !status.is_success() {
                return Err(Failure::Error(format!(
                    "the endpoint answered {status}: {}",
                    quote(&text)
                )));
            }
            let completion: Value = serde_json::from_str(&text)
                .map_err(|e| Failure::Error(format!("the endpoint's answer is not JSON: {e}")))?;
            return completion["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| {
                    Failure::Error("the endpoint's answer has no choices[0].message.content".into())
                });
        }
    }
}

impl Planner for LlmPlanner {
    fn plan(&self, prompt: &str, num_scenes: usize, seed: u64) -> Plan {
        let key = (prompt.to_owned(), num_scenes);
        let cached = lock(&self.cache).get(&key).cloned();
        let answer = match cached {
            Some(answer) => Ok((answer, "cached")),
            None => self.ask(prompt, num_scenes).map(|answer| {
                lock(&self.cache).put(key, answer.clone());
                (answer, "llm")
            }),
        };
        let (mut plan, outcome, reason) = match answer {
            Ok((Answer::World(mentions), outcome)) => {
                (fill(&mentions, num_scenes, seed), outcome, None)
            }
            Ok((Answer::FreeText(prompts), outcome)) => {
                (scene_prompts_plan(prompts), outcome, None)
            }
            Err(failure) => {
                let what = match &failure {
                    Failure::Timeout => {
                        format!("no answer within {} ms", self.config.timeout.as_millis())
                    }
                    Failure::Invalid(why) => format!("invalid answer: {why}"),
                    Failure::Error(why) => why.clone(),
                };
                let (plan, fallback) = match self.scheme {
                    Scheme::World => (RulePlanner.plan(prompt, num_scenes, seed), "rule"),
                    Scheme::FreeText => {
                        (FreeTextPlanner.plan(prompt, num_scenes, seed), "free-text")
                    }
                };
                let reason = format!("llm planner: {what}; {fallback} planner used");
                tracing::warn!(model = %self.config.model, %reason, "planning fell back");
                (plan, failure.outcome(), Some(reason))
            }
        };
        metrics::counter!("reel_planner_outcomes_total", "outcome" => outcome).increment(1);
        plan.origin = Some(PlanOrigin {
            outcome: outcome.into(),
            model: self.config.model.clone(),
            reason,
        });
        plan
    }

    fn blocks(&self) -> bool {
        true
    }
}

/// At most [`QUOTED_BODY`] characters of a body, on one line.
fn quote(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(QUOTED_BODY) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// The world's values of one attribute, as the answer spells them.
fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|&x| name(x)).collect()
}

/// The five attributes: key, values.
fn attributes() -> [(&'static str, Vec<&'static str>); 5] {
    [
        ("size", names(Size::ALL, Size::name)),
        ("color", names(Color::ALL, Color::name)),
        ("shape", names(Shape::ALL, Shape::name)),
        ("motion", names(Motion::ALL, Motion::name)),
        ("background", names(Background::ALL, Background::name)),
    ]
}

/// The system message: the world, the answer's form, how to fill it.
fn instructions(n: usize) -> String {
    let values: Vec<String> = attributes()
        .iter()
        .map(|(key, values)| format!("- {key}: {}", values.join(", ")))
        .collect();
    format!(
        "You plan short videos. Each scene shows one object (a size, a color, a shape, a \
         motion) on a plain background. The user's prompt, in English or Chinese, describes \
         the scenes in order. The allowed values are:\n{}\n(motion left, right, up and down \
         mean moving that way.) Answer with JSON only, in this form: {{\"scenes\": [{{\"size\": \
         ..., \"color\": ..., \"shape\": ..., \"motion\": ..., \"background\": ...}}]}} with \
         exactly {n} scenes. Use the allowed value nearest to each word (a box is a square, big \
         is large, grey is gray). Use null for an attribute the prompt does not state for that \
         scene: it is carried over from the previous scene or chosen later. If the prompt \
         describes fewer than {n} scenes, continue with the same object doing something else; \
         if more, keep the first {n}.",
        values.join("\n")
    )
}

/// The answer's JSON schema for `n` scenes: every attribute one of the world's values or null.
fn schema(n: usize) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (key, values) in attributes() {
        let mut allowed: Vec<Value> = values.into_iter().map(Value::from).collect();
        allowed.push(Value::Null);
        properties.insert(
            key.into(),
            json!({"type": ["string", "null"], "enum": allowed}),
        );
        required.push(key);
    }
    json!({
        "type": "object",
        "properties": {"scenes": {
            "type": "array", "minItems": n, "maxItems": n,
            "items": {
                "type": "object", "properties": properties,
                "required": required, "additionalProperties": false,
            },
        }},
        "required": ["scenes"],
        "additionalProperties": false,
    })
}

/// The system message for a free-form model: write each scene's prompt.
fn free_text_instructions(n: usize) -> String {
    format!(
        "You plan short videos made by a text-to-video model, one clip per scene. The user's \
         prompt describes the video. Split it into exactly {n} scenes, in order, and write each \
         scene's prompt for the video model: one or two sentences in the prompt's language that \
         say what is seen (subject, action, setting, style), repeating what the scene needs \
         from earlier scenes because each clip is made on its own. Answer with JSON only, in \
         this form: {{\"scenes\": [{{\"prompt\": ...}}]}} with exactly {n} scenes. If the \
         prompt describes fewer than {n} scenes, continue it; if more, merge them into {n}."
    )
}

/// The answer's JSON schema for `n` free-text scene prompts.
fn free_text_schema(n: usize) -> Value {
    json!({
        "type": "object",
        "properties": {"scenes": {
            "type": "array", "minItems": n, "maxItems": n,
            "items": {
                "type": "object",
                "properties": {"prompt": {
                    "type": "string", "minLength": 1,
                    "maxLength": storage::TaskParams::PROMPT_MAX_CHARS,
                }},
                "required": ["prompt"], "additionalProperties": false,
            },
        }},
        "required": ["scenes"],
        "additionalProperties": false,
    })
}

/// Each scene's prompt of a free-form answer (trimmed), or what is wrong with it.
fn read_free_text(content: &str, n: usize) -> Result<Vec<String>, String> {
    scenes(content, n)?
        .iter()
        .enumerate()
        .map(|(i, scene)| {
            let prompt = scene
                .get("prompt")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("scene {} has no \"prompt\" string", i + 1))?
                .trim();
            let chars = prompt.chars().count();
            if chars == 0 {
                return Err(format!("scene {} prompt is empty", i + 1));
            }
            let most = storage::TaskParams::PROMPT_MAX_CHARS;
            if chars > most {
                return Err(format!(
                    "scene {} prompt has {chars} characters, more than {most}",
                    i + 1
                ));
            }
            Ok(prompt.to_owned())
        })
        .collect()
}

/// The `n` scenes of an answer's `"scenes"` list, or what is wrong with it.
fn scenes(content: &str, n: usize) -> Result<Vec<Value>, String> {
    // Some models fence JSON even when asked for JSON only.
    let text = content.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text);
    let mut answer: Value =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object ({e})"))?;
    let scenes = match answer.get_mut("scenes").map(Value::take) {
        Some(Value::Array(scenes)) => scenes,
        _ => return Err("no \"scenes\" list".into()),
    };
    if scenes.len() != n {
        return Err(format!("{} scenes, not {n}", scenes.len()));
    }
    Ok(scenes)
}

/// What each scene of an answer names, or what is wrong with it.
fn read_answer(content: &str, n: usize) -> Result<Vec<Mention>, String> {
    let mut mentions = scenes(content, n)?
        .iter()
        .enumerate()
        .map(|(i, scene)| {
            let scene = scene
                .as_object()
                .ok_or_else(|| format!("scene {} is not an object", i + 1))?;
            let motion = value(scene, i, "motion", Motion::ALL, Motion::name)?;
            Ok(Mention {
                size: value(scene, i, "size", Size::ALL, Size::name)?,
                color: value(scene, i, "color", Color::ALL, Color::name)?,
                shape: value(scene, i, "shape", Shape::ALL, Shape::name)?,
                motion: motion.map(MotionWord::Named),
                background: value(scene, i, "background", Background::ALL, Background::name)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    share_first_background(&mut mentions);
    Ok(mentions)
}

/// Scene `index`'s `key`: a world value, `None` when null or absent.
fn value<T: Copy>(
    scene: &Map<String, Value>,
    index: usize,
    key: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Option<T>, String> {
    let not_in_world =
        |v: &dyn fmt::Display| format!("scene {} {key} {v} is not a world {key}", index + 1);
    match scene.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let word = s.trim().to_lowercase();
            all.iter()
                .copied()
                .find(|&x| name(x) == word)
                .map(Some)
                .ok_or_else(|| not_in_world(&format!("{s:?}")))
        }
        Some(other) => Err(not_in_world(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_lists_the_worlds_values() {
        let s = schema(2);
        let items = &s["properties"]["scenes"]["items"];
        assert_eq!(s["properties"]["scenes"]["minItems"], 2);
        let colors = items["properties"]["color"]["enum"].as_array().unwrap();
        assert_eq!(colors.len(), Color::ALL.len() + 1);
        assert!(colors.contains(&json!("cyan")) && colors.contains(&Value::Null));
        assert_eq!(items["required"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn answers_are_checked_against_the_world() {
        let ok = r#"{"scenes": [{"size": "small", "color": "red", "shape": "circle",
            "motion": "left", "background": null}, {"size": null, "color": null,
            "shape": null, "motion": "grow", "background": "navy"}]}"#;
        let m = read_answer(ok, 2).unwrap();
        assert_eq!(m[0].color, Some(Color::Red));
        assert_eq!(m[1].motion, Some(MotionWord::Named(Motion::Grow)));
        // A background named only later holds for the first scene too.
        assert_eq!(m[0].background, Some(Background::Navy));
        let fenced = format!("```json\n{ok}\n```");
        assert!(read_answer(&fenced, 2).is_ok());
        assert_eq!(read_answer(ok, 3).unwrap_err(), "2 scenes, not 3");
        let teal = ok.replace("\"red\"", "\"teal\"");
        assert_eq!(
            read_answer(&teal, 2).unwrap_err(),
            "scene 1 color \"teal\" is not a world color"
        );
        assert!(read_answer("the scenes are", 2)
            .unwrap_err()
            .starts_with("not a JSON object"));
    }

    #[test]
    fn free_text_answers_are_checked_against_the_scene_prompt_schema() {
        let ok = r#"{"scenes": [{"prompt": " A fox runs through snow. "}, {"prompt": "The fox leaps."}]}"#;
        assert_eq!(
            read_free_text(ok, 2).unwrap(),
            ["A fox runs through snow.", "The fox leaps."]
        );
        assert_eq!(read_free_text(ok, 1).unwrap_err(), "2 scenes, not 1");
        let blank = ok.replace("The fox leaps.", "  ");
        assert_eq!(
            read_free_text(&blank, 2).unwrap_err(),
            "scene 2 prompt is empty"
        );
        let long = ok.replace("The fox leaps.", &"x".repeat(2001));
        assert_eq!(
            read_free_text(&long, 2).unwrap_err(),
            "scene 2 prompt has 2001 characters, more than 2000"
        );
        let number = r#"{"scenes": [{"prompt": 3}]}"#;
        assert_eq!(
            read_free_text(number, 1).unwrap_err(),
            "scene 1 has no \"prompt\" string"
        );
        let s = free_text_schema(3);
        assert_eq!(s["properties"]["scenes"]["maxItems"], 3);
        assert_eq!(
            s["properties"]["scenes"]["items"]["required"],
            json!(["prompt"])
        );
    }

    #[test]
    fn reasons_quote_bodies_briefly() {
        assert_eq!(quote("a\n  b"), "a b");
        assert_eq!(quote(&"x".repeat(500)).chars().count(), QUOTED_BODY + 1);
    }
}
