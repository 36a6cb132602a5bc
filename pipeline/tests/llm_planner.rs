//! The LLM planner against a fake OpenAI-compatible server on loopback: a valid answer, an
//! invalid one then a valid one, invalid twice, no answer in time, a 500, a body trickling
//! past the timeout, and an endpoint that refuses JSON schemas. Every case yields a plan, and
//! the plan's origin says what happened (the reason is what the warning logs). For a
//! free-form model: the model's scene prompts, and the free-text planner when they are
//! invalid.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline::plan::{Attr, Plan, Planner};
use pipeline::planner::{FreeTextPlanner, LlmConfig, LlmPlanner, RulePlanner};
use pipeline::world::{Background, Color, Motion, Shape, Size};
use serde_json::{json, Value};

/// What the fake server does with one request.
enum Reply {
    /// 200 with a chat completion whose message content is this.
    Content(String),
    /// This status and body.
    Status(u16, &'static str),
    /// Waits, then answers as the next reply would.
    Sleep(Duration),
    /// 200 with a chat completion whose body comes one byte every 100 ms.
    Trickle,
}

/// A fake chat-completions endpoint: answers requests with `replies` in order and keeps the
/// requests' bodies.
struct Fake {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

fn fake(replies: Vec<Reply>) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let (seen, replies) = (seen.clone(), replies.clone());
            std::thread::spawn(move || serve(stream.unwrap(), &seen, &replies));
        }
    });
    Fake { url, requests }
}

/// Answers the requests of one connection (the client may send several on it).
fn serve(stream: TcpStream, seen: &Mutex<Vec<Value>>, replies: &Mutex<VecDeque<Reply>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut length = 0;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if first {
                assert!(line.starts_with("POST /v1/chat/completions "), "{line}");
                first = false;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        seen.lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap());
        let mut reply = replies.lock().unwrap().pop_front().expect("a reply");
        while let Reply::Sleep(d) = reply {
            std::thread::sleep(d);
            reply = replies.lock().unwrap().pop_front().expect("a reply");
        }
        let written = match reply {
            Reply::Content(content) => respond(&mut out, 200, &completion(&content)),
            Reply::Status(code, body) => respond(&mut out, code, body),
            Reply::Trickle => trickle(&mut out, &completion("{}")),
            Reply::Sleep(_) => unreachable!(),
        };
        if written.is_err() {
            return;
        }
    }
}

fn completion(content: &str) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "fake",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
    })
    .to_string()
}

fn respond(out: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

fn trickle(out: &mut TcpStream, body: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    for b in body.bytes() {
        out.write_all(&[b])?;
        out.flush()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn config(fake: &Fake, timeout_ms: u64) -> LlmConfig {
    LlmConfig {
        url: fake.url.clone(),
        model: "fake-model".into(),
        timeout: Duration::from_millis(timeout_ms),
        api_key: Some("sk-test".into()),
    }
}

fn planner(fake: &Fake, timeout_ms: u64) -> LlmPlanner {
    LlmPlanner::new(config(fake, timeout_ms)).unwrap()
}

const PROMPT: &str = "a big cyan diamond rises, then it shrinks";

/// The model's valid answer to [`PROMPT`] in two scenes; the background is left open.
fn valid() -> Reply {
    Reply::Content(
        json!({"scenes": [
            {"size": "large", "color": "cyan", "shape": "diamond", "motion": "up", "background": null},
            {"size": null, "color": null, "shape": null, "motion": "shrink", "background": null},
        ]})
        .to_string(),
    )
}

/// An answer naming a colour outside the world.
fn teal() -> Reply {
    Reply::Content(
        json!({"scenes": [
            {"size": "large", "color": "teal", "shape": "diamond", "motion": "up", "background": null},
            {"size": null, "color": null, "shape": null, "motion": "shrink", "background": null},
        ]})
        .to_string(),
    )
}

fn outcome(plan: &Plan) -> (&str, Option<&str>) {
    let origin = plan
        .origin
        .as_ref()
        .expect("the LLM planner says how it fared");
    assert_eq!(origin.model, "fake-model");
    (origin.outcome.as_str(), origin.reason.as_deref())
}

/// The rule planner's scenes, as a fallback must give.
fn assert_rule_plan(plan: &Plan, prompt: &str, n: usize, seed: u64) {
    assert_eq!(plan.scenes, RulePlanner.plan(prompt, n, seed).scenes);
}

#[test]
fn a_valid_answer_is_used_filled_as_the_rules_fill_and_cached() {
    let fake = fake(vec![valid()]);
    let p = planner(&fake, 5000);
    let plan = p.plan(PROMPT, 2, 7);
    assert_eq!(outcome(&plan), ("llm", None));
    let [first, second] = &plan.scenes[..] else {
        panic!("two scenes")
    };
    let s = first.scene.unwrap();
    assert_eq!(
        (s.size, s.color, s.shape, s.motion),
        (Size::Large, Color::Cyan, Shape::Diamond, Motion::Up)
    );
    // The open background is drawn from the seed and marked, as the rule planner does.
    assert_eq!(first.guessed, vec![Attr::Background]);
    assert_eq!(first.caption, s.caption());
    // The second scene names only its motion: the object and canvas carry over.
    assert_eq!(second.scene.unwrap().motion, Motion::Shrink);
    assert_eq!(
        (
            second.scene.unwrap().color,
            second.scene.unwrap().background
        ),
        (Color::Cyan, s.background)
    );
    assert!(Background::ALL.contains(&s.background));

    let requests = fake.requests.lock().unwrap().clone();
    let [request] = &requests[..] else {
        panic!("one request")
    };
    assert_eq!(request["model"], "fake-model");
    assert_eq!(request["temperature"], 0);
    assert_eq!(request["stream"], false);
    assert_eq!(request["messages"][1]["content"], PROMPT);
    let format = &request["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    let scenes = &format["json_schema"]["schema"]["properties"]["scenes"];
    assert_eq!(scenes["minItems"], 2);
    let motions = &scenes["items"]["properties"]["motion"]["enum"];
    assert!(motions.as_array().unwrap().contains(&json!("shrink")));

    // The same prompt and scene count again: the cached answer, whatever the seed.
    let again = p.plan(PROMPT, 2, 8);
    assert_eq!(outcome(&again), ("cached", None));
    assert_eq!(again.scenes[0].scene.unwrap().color, Color::Cyan);
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
}

#[test]
fn an_invalid_answer_is_asked_again_with_what_was_wrong() {
    let fake = fake(vec![teal(), valid()]);
    let plan = planner(&fake, 5000).plan(PROMPT, 2, 7);
    assert_eq!(outcome(&plan), ("llm", None));
    assert_eq!(plan.scenes[0].scene.unwrap().color, Color::Cyan);
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let retry = requests[1]["messages"].as_array().unwrap();
    let told = retry.last().unwrap()["content"].as_str().unwrap();
    assert!(
        told.contains("scene 1 color \"teal\" is not a world color"),
        "{told}"
    );
}

#[test]
fn invalid_twice_falls_back_to_the_rules_with_the_reason() {
    let fake = fake(vec![
        Reply::Content("the scenes are: a cyan diamond".into()),
        teal(),
    ]);
    let plan = planner(&fake, 5000).plan(PROMPT, 2, 7);
    assert_eq!(
        outcome(&plan),
        (
            "fallback_invalid",
            Some(
                "llm planner: invalid answer: scene 1 color \"teal\" is not a world color; \
                 rule planner used"
            )
        )
    );
    assert_rule_plan(&plan, PROMPT, 2, 7);
    assert_eq!(fake.requests.lock().unwrap().len(), 2);
}

#[test]
fn no_answer_in_time_falls_back_quickly() {
    let fake = fake(vec![Reply::Sleep(Duration::from_secs(5)), valid()]);
    let started = Instant::now();
    let plan = planner(&fake, 300).plan(PROMPT, 2, 7);
    assert_eq!(
        outcome(&plan),
        (
            "fallback_timeout",
            Some("llm planner: no answer within 300 ms; rule planner used")
        )
    );
    assert_rule_plan(&plan, PROMPT, 2, 7);
    // Not the server's five seconds (a loose bound: the machine may be busy).
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_server_error_falls_back_with_the_status() {
    let error = || Reply::Status(500, "{\"error\": \"model not loaded\"}");
    let fake = fake(vec![error(), error()]);
    let p = planner(&fake, 5000);
    let plan = p.plan(PROMPT, 3, 1);
    let (what, reason) = outcome(&plan);
    assert_eq!(what, "fallback_error");
    let reason = reason.unwrap();
    assert!(
        reason.starts_with("llm planner: the endpoint answered 500")
            && reason.contains("model not loaded")
            && reason.ends_with("; rule planner used"),
        "{reason}"
    );
    assert_rule_plan(&plan, PROMPT, 3, 1);
    // A failure is not cached: the next plan asks again.
    assert_eq!(outcome(&p.plan(PROMPT, 3, 1)).0, "fallback_error");
    assert_eq!(fake.requests.lock().unwrap().len(), 2);
}

#[test]
fn a_body_trickling_past_the_timeout_falls_back() {
    let fake = fake(vec![Reply::Trickle]);
    let started = Instant::now();
    let plan = planner(&fake, 500).plan(PROMPT, 2, 7);
    assert_eq!(
        outcome(&plan),
        (
            "fallback_timeout",
            Some("llm planner: no answer within 500 ms; rule planner used")
        )
    );
    assert_rule_plan(&plan, PROMPT, 2, 7);
    // The whole body would take about 25 s.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_endpoint_refusing_schemas_is_asked_for_a_json_object() {
    let fake = fake(vec![
        Reply::Status(
            400,
            "{\"error\": \"response_format json_schema unsupported\"}",
        ),
        valid(),
        valid(),
    ]);
    let p = planner(&fake, 5000);
    let plan = p.plan(PROMPT, 2, 7);
    assert_eq!(outcome(&plan), ("llm", None));
    assert_eq!(plan.scenes[0].scene.unwrap().shape, Shape::Diamond);
    // Remembered: the next prompt goes straight to a JSON object.
    assert_eq!(outcome(&p.plan("a red circle", 2, 7)), ("llm", None));
    let formats: Vec<Value> = fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["response_format"]["type"].clone())
        .collect();
    assert_eq!(
        formats,
        [
            json!("json_schema"),
            json!("json_object"),
            json!("json_object")
        ]
    );
}

const FREE_PROMPT: &str = "A fox runs through snow at dawn, then it leaps over a fallen log.";

#[test]
fn a_free_form_model_gets_the_models_scene_prompts() {
    let answer = json!({"scenes": [
        {"prompt": "A red fox runs through deep snow at dawn, soft light."},
        {"prompt": "The red fox leaps over a fallen log in the snow."},
    ]});
    let fake = fake(vec![Reply::Content(answer.to_string())]);
    let p = LlmPlanner::free_form(config(&fake, 5000)).unwrap();
    let plan = p.plan(FREE_PROMPT, 2, 7);
    assert_eq!(outcome(&plan), ("llm", None));
    let prompts: Vec<&str> = plan.scenes.iter().map(|s| s.caption.as_str()).collect();
    assert_eq!(
        prompts,
        [
            "A red fox runs through deep snow at dawn, soft light.",
            "The red fox leaps over a fallen log in the snow."
        ]
    );
    assert!(plan
        .scenes
        .iter()
        .all(|s| s.scene.is_none() && s.guessed.is_empty()));
    let requests = fake.requests.lock().unwrap().clone();
    let format = &requests[0]["response_format"]["json_schema"]["schema"];
    let items = &format["properties"]["scenes"]["items"];
    assert_eq!(items["properties"]["prompt"]["type"], "string");
    assert!(requests[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("exactly 2 scenes"));
    let again = p.plan(FREE_PROMPT, 2, 8);
    assert_eq!(outcome(&again), ("cached", None));
    assert_eq!(again.scenes, plan.scenes);
}

#[test]
fn invalid_free_form_prompts_fall_back_to_the_free_text_planner() {
    let empty = json!({"scenes": [{"prompt": "A fox runs."}, {"prompt": " "}]}).to_string();
    let fake = fake(vec![Reply::Content(empty.clone()), Reply::Content(empty)]);
    let p = LlmPlanner::free_form(config(&fake, 5000)).unwrap();
    let plan = p.plan(FREE_PROMPT, 2, 7);
    assert_eq!(
        outcome(&plan),
        (
            "fallback_invalid",
            Some("llm planner: invalid answer: scene 2 prompt is empty; free-text planner used")
        )
    );
    assert_eq!(plan.scenes, FreeTextPlanner.plan(FREE_PROMPT, 2, 7).scenes);
    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "asked again once");
    let retry = requests[1]["messages"][3]["content"].as_str().unwrap();
    assert!(retry.contains("every prompt a non-empty string"), "{retry}");
}
