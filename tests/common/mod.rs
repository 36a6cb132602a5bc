//! What the end-to-end tests share: the `reel` binary started on a free port over a temporary
//! data dir, and small HTTP helpers.

#![allow(dead_code)] // each test crate uses its own share

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

/// A `reel serve` child process on a free port; killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::try_start(data, extra).unwrap_or_else(|log| panic!("server did not start: {log}"))
    }

    /// The server, or what it logged before exiting.
    pub fn try_start(data: &Path, extra: &[&str]) -> Result<Server, String> {
        Server::try_start_as(&["serve"], data, extra)
    }

    /// `reel <command...>` serving on a free port (`serve`, or `cluster --local N ...`, which
    /// takes every flag of serve), or what it logged before exiting.
    pub fn try_start_as(command: &[&str], data: &Path, extra: &[&str]) -> Result<Server, String> {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
            .args(command)
            .args(["--port", &port.to_string(), "--data-dir"])
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
        let mut log = String::new();
        loop {
            assert!(Instant::now() < deadline, "server did not start: {log}");
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                return Err(log);
            };
            if line.contains("reel is serving") {
                break;
            }
            log.push_str(&line);
            log.push('\n');
        }
        // Keep draining the log so the child never blocks on a full pipe, into server.log in
        // the data dir, for a failed test to be read.
        let mut saved = std::fs::File::create(data.join("server.log")).ok();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(f) = saved.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        Ok(Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn small_task(prompt: &str, seed: u64) -> Value {
    json!({"prompt": prompt, "num_scenes": 2, "seed": seed, "steps": 3,
           "seconds_per_scene": 0.5, "fps": 8, "size": 64})
}

pub fn submit(c: &Client, s: &Server, body: &Value) -> Value {
    let r = c.post(s.url("/api/tasks")).json(body).send().unwrap();
    assert_eq!(r.status().as_u16(), 202, "submit refused: {:?}", r.text());
    r.json().unwrap()
}

pub fn wait_final(c: &Client, s: &Server, id: u64) -> Value {
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

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reel-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The MP4 of a completed task.
pub fn video_of(c: &Client, s: &Server, id: u64) -> Vec<u8> {
    let r = c
        .get(s.url(&format!("/api/tasks/{id}/video")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.bytes().unwrap().to_vec()
}

/// `n` copies of `body` posted at once (a thread each): their task ids.
pub fn submit_at_once(s: &Server, body: &Value, n: usize) -> Vec<u64> {
    std::thread::scope(|scope| {
        let posts: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| submit(&client(), s, body)["id"].as_u64().unwrap()))
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    })
}

/// Waits for every task of `ids`, each of which must complete without the finished-result
/// cache (they were in flight together), and returns their videos.
pub fn fresh_videos(c: &Client, s: &Server, ids: &[u64]) -> Vec<Vec<u8>> {
    ids.iter()
        .map(|&id| {
            let done = wait_final(c, s, id);
            assert_eq!(done["status"], "completed", "{done}");
            assert_eq!(done["cached"], false, "{done}");
            video_of(c, s, id)
        })
        .collect()
}

/// The server's `/metrics` text.
pub fn metrics(c: &Client, s: &Server) -> String {
    c.get(s.url("/metrics")).send().unwrap().text().unwrap()
}

/// The value of the metric line starting with `series` (name and labels) in `metrics`' text;
/// 0 when absent.
pub fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// Cancels task `id` (`DELETE`), which must be accepted.
pub fn cancel(c: &Client, s: &Server, id: u64) {
    let r = c.delete(s.url(&format!("/api/tasks/{id}"))).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "cancel refused: {:?}", r.text());
}
