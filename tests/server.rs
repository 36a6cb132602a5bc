//! End-to-end tests of `reel serve`: the real binary on a real socket, sled on disk in a
//! temporary data dir, the shipped model. Requests use few steps and small frames so that
//! each task takes well under a second on two cores.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

/// A `reel serve` child process on a free port; killed (SIGKILL) on drop.
struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
            .args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(data)
            .args(["--post", "cpu"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reel binary starts");
        // Wait for the log line saying the socket is bound.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "server did not start");
            let line = lines.next().expect("server exited before serving").unwrap();
            if line.contains("reel is serving") {
                break;
            }
        }
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn small_task(prompt: &str, seed: u64) -> Value {
    json!({"prompt": prompt, "num_scenes": 2, "seed": seed, "steps": 3,
           "seconds_per_scene": 0.5, "fps": 8, "size": 64})
}

fn submit(c: &Client, s: &Server, body: &Value) -> Value {
    let r = c.post(s.url("/api/tasks")).json(body).send().unwrap();
    assert_eq!(r.status().as_u16(), 202, "submit refused: {:?}", r.text());
    r.json().unwrap()
}

fn wait_final(c: &Client, s: &Server, id: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let task: Value = c
            .get(s.url(&format!("/api/tasks/{id}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let status = task["status"].as_str().unwrap_or_default().to_string();
        if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
            return task;
        }
        assert!(Instant::now() < deadline, "task {id} stuck in {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reel-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_task_completes_with_a_playable_mp4_of_the_right_length() {
    let data = temp_dir("complete");
    let server = Server::start(&data, &[]);
    let c = client();
    let task = submit(
        &c,
        &server,
        &small_task(
            "a small red circle moving left on a black background, then it grows",
            1,
        ),
    );
    let id = task["id"].as_u64().unwrap();
    let done = wait_final(&c, &server, id);
    assert_eq!(done["status"], "completed", "{done}");
    let caption = done["plan"][0]["caption"].as_str().unwrap();
    assert!(caption.contains("small red circle"), "{caption}");

    let video = c
        .get(server.url(&format!("/api/tasks/{id}/video")))
        .send()
        .unwrap();
    assert_eq!(video.status().as_u16(), 200);
    let bytes = video.bytes().unwrap();
    let mp4 =
        mp4::Mp4Reader::read_header(std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
    let track = mp4.tracks().values().next().unwrap();
    // 2 scenes x 0.5 s x 8 fps
    assert_eq!(track.sample_count(), 8);
    assert_eq!((track.width(), track.height()), (64, 64));

    let frame = c
        .get(server.url(&format!("/api/tasks/{id}/frames/7")))
        .send()
        .unwrap();
    assert_eq!(frame.status().as_u16(), 200);
    assert!(frame.bytes().unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn the_same_request_again_is_answered_from_the_cache() {
    let data = temp_dir("cache");
    let server = Server::start(&data, &[]);
    let c = client();
    let body = small_task("a big blue box slides to the right", 7);
    let first = submit(&c, &server, &body)["id"].as_u64().unwrap();
    assert_eq!(wait_final(&c, &server, first)["cached"], false);
    let second = submit(&c, &server, &body)["id"].as_u64().unwrap();
    let done = wait_final(&c, &server, second);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["cached"], true);
}

#[test]
fn cancelling_stops_a_task_and_is_idempotent() {
    let data = temp_dir("cancel");
    let server = Server::start(&data, &[]);
    let c = client();
    let mut body = small_task("a green triangle moving up", 3);
    body["steps"] = json!(100);
    body["num_scenes"] = json!(8);
    let id = submit(&c, &server, &body)["id"].as_u64().unwrap();
    for _ in 0..2 {
        let r = c
            .delete(server.url(&format!("/api/tasks/{id}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    assert_eq!(wait_final(&c, &server, id)["status"], "cancelled");
    // The engine is free again: a new task completes.
    let next = submit(&c, &server, &small_task("a white dot", 4))["id"]
        .as_u64()
        .unwrap();
    assert_eq!(wait_final(&c, &server, next)["status"], "completed");
}

#[test]
fn accepted_tasks_survive_kill_9_and_complete_after_restart() {
    let data = temp_dir("restart");
    let c = client();
    let ids: Vec<u64> = {
        let server = Server::start(&data, &[]);
        let ids = (0..4)
            .map(|i| {
                submit(
                    &c,
                    &server,
                    &small_task("a purple square moving down", 100 + i),
                )["id"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        drop(server); // SIGKILL right after the 202s
        ids
    };
    let server = Server::start(&data, &[]);
    for id in ids {
        assert_eq!(
            wait_final(&c, &server, id)["status"],
            "completed",
            "task {id}"
        );
    }
}

#[test]
fn beyond_the_queue_bound_requests_get_429_and_nothing_is_stored() {
    let data = temp_dir("bound");
    let server = Server::start(&data, &["--queue-bound", "1"]);
    let c = client();
    let mut body = small_task("a cyan diamond", 5);
    body["steps"] = json!(100);
    body["num_scenes"] = json!(8);
    let id = submit(&c, &server, &body)["id"].as_u64().unwrap();
    let r = c.post(server.url("/api/tasks")).json(&body).send().unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let err: Value = r.json().unwrap();
    assert!(err["code"].is_string() && err["message"].is_string());
    let list: Value = c
        .get(server.url("/api/tasks"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1, "{list}");
    c.delete(server.url(&format!("/api/tasks/{id}")))
        .send()
        .unwrap();
}
