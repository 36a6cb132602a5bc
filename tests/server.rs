//! End-to-end tests of `reel serve`: the real binary on a real socket, sled on disk in a
//! temporary data dir, the shipped model. Requests use few steps and small frames so that
//! each task takes well under a second on two cores.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

mod common;

use common::*;

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

/// The engine's count of scene-steps denoised so far, from `/metrics`.
fn denoise_steps(c: &Client, s: &Server) -> u64 {
    counter(&metrics(c, s), "reel_denoise_steps_total")
}

#[test]
fn cancelling_stops_a_task_and_is_idempotent() {
    let data = temp_dir("cancel");
    let server = Server::start(&data, &["--max-cpu-percent", "100"]);
    let c = client();
    let mut body = small_task("a green triangle moving up", 3);
    body["steps"] = json!(100);
    body["num_scenes"] = json!(8);
    let id = submit(&c, &server, &body)["id"].as_u64().unwrap();
    // Wait until it is denoising, so that cancelling has steps to stop.
    let deadline = Instant::now() + Duration::from_secs(60);
    while denoise_steps(&c, &server) == 0 {
        assert!(Instant::now() < deadline, "no denoising started");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..2 {
        cancel(&c, &server, id);
    }
    assert_eq!(wait_final(&c, &server, id)["status"], "cancelled");
    // The engine really stopped: after the step under way, no more steps are spent on it
    // (800 were left: 8 scenes x 100 steps, a few ms each).
    std::thread::sleep(Duration::from_millis(300));
    let after_cancel = denoise_steps(&c, &server);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        denoise_steps(&c, &server),
        after_cancel,
        "denoising went on"
    );
    assert!(
        after_cancel < 8 * 100,
        "the task ran to the end: {after_cancel} steps"
    );
    // The engine is free again: a new task completes.
    let next = submit(&c, &server, &small_task("a white dot", 4))["id"]
        .as_u64()
        .unwrap();
    assert_eq!(wait_final(&c, &server, next)["status"], "completed");
}

#[test]
fn identical_tasks_in_flight_at_once_are_denoised_once() {
    // Two timely workers: identical tasks are routed to one, where they share the runs.
    let data = temp_dir("shared");
    let server = Server::start(&data, &["--workers", "2"]);
    let c = client();
    // 2 scenes x 40 steps: long enough that all ten arrive while the first scene runs.
    let mut body = small_task("a yellow star spins", 11);
    body["steps"] = json!(40);
    // Not the finished-result cache: every task was in flight at once.
    let videos = fresh_videos(&c, &server, &submit_at_once(&server, &body, 10));
    // Ten tasks, one run per scene: 2 x 40 scene-steps, not 10 x 80.
    assert_eq!(denoise_steps(&c, &server), 2 * 40);
    assert!(videos.iter().all(|v| v == &videos[0]), "the videos differ");

    // Alone, the same request with another seed denoises again and makes another video.
    body["seed"] = json!(12);
    let other = submit(&c, &server, &body)["id"].as_u64().unwrap();
    assert_eq!(wait_final(&c, &server, other)["status"], "completed");
    assert_eq!(denoise_steps(&c, &server), 2 * 2 * 40);
    assert_ne!(video_of(&c, &server, other), videos[0]);
}

#[test]
fn a_shared_run_goes_on_for_the_tasks_that_still_want_it() {
    let data = temp_dir("shared-cancel");
    let server = Server::start(&data, &[]);
    let c = client();
    let mut body = small_task("a pink heart moving down", 5);
    body["steps"] = json!(100);
    body["num_scenes"] = json!(1);
    let first = submit(&c, &server, &body)["id"].as_u64().unwrap();
    let second = submit(&c, &server, &body)["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while denoise_steps(&c, &server) == 0 {
        assert!(Instant::now() < deadline, "no denoising started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The run's leader is cancelled; its follower keeps the run.
    let r = c
        .delete(server.url(&format!("/api/tasks/{first}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(wait_final(&c, &server, first)["status"], "cancelled");
    let done = wait_final(&c, &server, second);
    assert_eq!(done["status"], "completed", "{done}");
    // One run of 100 steps served both.
    assert_eq!(denoise_steps(&c, &server), 100);
}

#[test]
fn accepted_tasks_survive_kill_9_and_complete_after_restart() {
    let data = temp_dir("restart");
    let c = client();
    let ids: Vec<u64> = {
        let server = Server::start(&data, &["--webhook-private"]);
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

/// Runs `reel keys ...` and returns its JSON.
fn keys_cli(data: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn keys_guard_every_api_route_and_keep_tasks_apart() {
    let data = temp_dir("keys");
    let admin = keys_cli(&data, &["create", "--name", "ops", "--admin"]);
    let admin_token = admin["token"].as_str().unwrap().to_string();
    assert!(admin_token.starts_with("reel_"));
    let server = Server::start(&data, &["--key-max-in-flight", "1"]);
    let c = client();
    let anonymous = c
        .post(server.url("/api/tasks"))
        .json(&small_task("a dot", 1))
        .send()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(
        c.get(server.url("/healthz"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // The admin makes a user key through the API while the server runs.
    let user: Value = c
        .post(server.url("/api/keys"))
        .bearer_auth(&admin_token)
        .json(&json!({"name": "alice"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let alice = user["token"].as_str().unwrap().to_string();
    let other: Value = c
        .post(server.url("/api/keys"))
        .bearer_auth(&admin_token)
        .json(&json!({"name": "bob"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let bob = other["token"].as_str().unwrap().to_string();

    let mut body = small_task("a red circle", 2);
    body["steps"] = json!(100);
    body["num_scenes"] = json!(8);
    let r = c
        .post(server.url("/api/tasks"))
        .bearer_auth(&alice)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
    // Alice's second task in flight is over her quota.
    let r = c
        .post(server.url("/api/tasks"))
        .bearer_auth(&alice)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().unwrap()["code"], "quota_exceeded");
    // Bob cannot see or cancel it, and lists nothing; the admin sees it.
    let path = format!("/api/tasks/{id}");
    assert_eq!(
        c.get(server.url(&path))
            .bearer_auth(&bob)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        c.delete(server.url(&path))
            .bearer_auth(&bob)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let listed: Value = c
        .get(server.url("/api/tasks"))
        .bearer_auth(&bob)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(listed["tasks"].as_array().unwrap().is_empty(), "{listed}");
    assert_eq!(
        c.get(server.url(&path))
            .bearer_auth(&admin_token)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        c.get(server.url("/api/stats"))
            .bearer_auth(&bob)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        c.get(server.url("/metrics"))
            .bearer_auth(&admin_token)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // Revoked at once.
    let bob_id = other["id"].as_str().unwrap();
    let r = c
        .delete(server.url(&format!("/api/keys/{bob_id}")))
        .bearer_auth(&admin_token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        c.get(server.url("/api/tasks"))
            .bearer_auth(&bob)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    c.delete(server.url(&path))
        .bearer_auth(&alice)
        .send()
        .unwrap();
}

#[test]
fn a_public_address_without_keys_is_refused_unless_insecure() {
    let data = temp_dir("exposed");
    let log = Server::try_start(&data, &["--host", "0.0.0.0"])
        .err()
        .expect("must refuse");
    assert!(log.contains("without API keys"), "{log}");
    let server = Server::start(&data, &["--host", "0.0.0.0", "--insecure"]);
    let ready: Value = client()
        .get(server.url("/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["auth"], "open");
}

#[test]
fn a_dead_worker_makes_the_server_unready_fails_its_task_and_recovers() {
    let data = temp_dir("dead-worker");
    let server = Server::start(&data, &["--fault-injection"]);
    let c = client();
    let poison = small_task("a red circle #reel-fault:panic-worker#", 9);
    let id = submit(&c, &server, &poison)["id"].as_u64().unwrap();
    // Unready, with the reason, until a fresh dataflow runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let r = c.get(server.url("/readyz")).send().unwrap();
        if r.status().as_u16() == 503 {
            break r.json::<Value>().unwrap();
        }
        assert!(Instant::now() < deadline, "readyz never turned 503");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(ready["reasons"].to_string().contains("panicked"), "{ready}");
    let refused = c
        .post(server.url("/api/tasks"))
        .json(&small_task("a dot", 1))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.json::<Value>().unwrap()["code"],
        "engine_unavailable"
    );
    let failed = wait_final(&c, &server, id);
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("engine stopped"),
        "{failed}"
    );
    // Recovered without a restart: ready again, and new tasks complete.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .get(server.url("/readyz"))
        .send()
        .unwrap()
        .status()
        .as_u16()
        != 200
    {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let next = submit(&c, &server, &small_task("a white dot", 4))["id"]
        .as_u64()
        .unwrap();
    assert_eq!(wait_final(&c, &server, next)["status"], "completed");
}

#[test]
fn below_the_disk_floor_tasks_are_refused_and_the_server_says_why() {
    let data = temp_dir("disk-floor");
    // A floor far above any disk's free space: the server must refuse, not fail later.
    let server = Server::start(&data, &["--min-free-disk-mb", "1000000000"]);
    let c = client();
    let r = c
        .post(server.url("/api/tasks"))
        .json(&small_task("a dot", 1))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 507);
    assert_eq!(r.json::<Value>().unwrap()["code"], "insufficient_storage");
    let ready = c.get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(ready.json::<Value>().unwrap()["reasons"]
        .to_string()
        .contains("disk"));
    let list: Value = c
        .get(server.url("/api/tasks"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        list["tasks"].as_array().unwrap().is_empty(),
        "nothing stored: {list}"
    );
}

/// What a loopback webhook receiver got: (headers lower-cased, body) per request.
type Received =
    std::sync::Arc<std::sync::Mutex<Vec<(std::collections::HashMap<String, String>, Vec<u8>)>>>;

/// A minimal HTTP receiver on `port` answering 200 to everything, recording each request.
fn webhook_receiver(port: u16) -> Received {
    use std::io::{Read, Write};
    let got: Received = Default::default();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut headers = std::collections::HashMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap(); // request line
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            sink.lock().unwrap().push((headers, body));
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    got
}

#[test]
fn webhooks_are_signed_and_what_is_owed_is_delivered_after_a_restart() {
    use hmac::Mac;
    let data = temp_dir("webhooks");
    let made = keys_cli(&data, &["create", "--name", "hooks"]);
    let (token, secret) = (
        made["token"].as_str().unwrap(),
        made["webhook_secret"].as_str().unwrap(),
    );
    let port = free_port(); // nobody listens there yet: every delivery fails at first
    let c = client();
    let id = {
        let server = Server::start(&data, &["--webhook-private"]);
        let mut body = small_task("a blue square", 6);
        body["webhook"] = json!(format!("http://127.0.0.1:{port}/hook"));
        body["webhook_events_filter"] = json!(["start", "completed"]);
        let r = c
            .post(server.url("/api/tasks"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{:?}", r.text());
        let id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t: Value = c
                .get(server.url(&format!("/api/tasks/{id}")))
                .bearer_auth(token)
                .send()
                .unwrap()
                .json()
                .unwrap();
            if t["status"] == "completed" {
                break;
            }
            assert!(Instant::now() < deadline, "{t}");
            std::thread::sleep(Duration::from_millis(50));
        }
        id
        // SIGKILL: the two deliveries are still owed
    };
    let got = webhook_receiver(port);
    let _server = Server::start(&data, &["--webhook-private"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = std::collections::BTreeMap::new();
    while events.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "owed webhooks not delivered: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        for (headers, body) in got.lock().unwrap().iter() {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(body);
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(headers["x-reel-signature"], format!("sha256={hex}"));
            let doc: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(doc["task"]["id"], id);
            assert_eq!(doc["event"], headers["x-reel-event"].as_str());
            events.insert(
                doc["event"].as_str().unwrap().to_string(),
                doc["task"]["status"].clone(),
            );
        }
    }
    assert_eq!(events["start"], "planning");
    assert_eq!(events["completed"], "completed");
    assert_eq!(events.len(), 2, "only the filtered events: {events:?}");
}

/// A tmpfs of `mb` MiB mounted on a fresh directory (unmounted on drop): a small filesystem
/// that can really fill up. Mounting needs root, which CI and this project's machines have.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(name: &str, mb: u64) -> SmallDisk {
        let dir = temp_dir(name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_running_tasks_refuses_new_ones_and_recovers_when_space_returns() {
    let disk = SmallDisk::mount("small-disk", 64);
    let data = disk.0.join("data");
    let server = Server::start(&data, &["--min-free-disk-mb", "24"]);
    let c = client();
    // A long task: frames keep being written while the disk fills.
    let mut body = small_task("a yellow star moving left", 8);
    body["steps"] = json!(100);
    body["num_scenes"] = json!(8);
    body["size"] = json!(128);
    let id = submit(&c, &server, &body)["id"].as_u64().unwrap();
    // Fill the disk until less than the floor is free.
    let filler = disk.0.join("filler");
    let free = fs4::available_space(&disk.0).unwrap();
    let fill = free.saturating_sub(8 << 20);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();

    let failed = wait_final(&c, &server, id);
    assert_eq!(failed["status"], "failed", "{failed}");
    // Failed by the disk watch ("...for want of disk space...") or by a write that found no
    // space ("No space left on device"): either way, with the reason.
    assert!(
        failed["error"].as_str().unwrap().contains("space"),
        "{failed}"
    );
    let r = c
        .post(server.url("/api/tasks"))
        .json(&small_task("a dot", 1))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 507);
    assert!(r.headers().contains_key("retry-after"));
    let ready = c.get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    // Space comes back: the server recovers without a restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c
        .get(server.url("/readyz"))
        .send()
        .unwrap()
        .status()
        .as_u16()
        != 200
    {
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let next = submit(&c, &server, &small_task("a white dot", 4))["id"]
        .as_u64()
        .unwrap();
    assert_eq!(wait_final(&c, &server, next)["status"], "completed");
    drop(server);
}

#[test]
fn cors_is_off_unless_origins_are_named_and_metrics_can_have_their_own_address() {
    let c = client();
    let data = temp_dir("cors-off");
    let plain = Server::start(&data, &[]);
    let r = c
        .get(plain.url("/api/tasks"))
        .header("origin", "http://page.test")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    drop(plain);

    let data = temp_dir("cors-on");
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let server = Server::start(
        &data,
        &[
            "--cors-origin",
            "http://page.test",
            "--metrics-addr",
            &metrics_addr,
        ],
    );
    let preflight = c
        .request(reqwest::Method::OPTIONS, server.url("/api/tasks"))
        .header("origin", "http://page.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://page.test"
    );
    let other = c
        .get(server.url("/api/tasks"))
        .header("origin", "http://evil.test")
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 403);
    assert_eq!(other.json::<Value>().unwrap()["code"], "cors_forbidden");
    // /metrics is on its own listener only.
    let text = c
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("reel_live_tasks"), "{text}");
    let r = c.get(server.url("/metrics")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn asking_about_tasks_that_do_not_exist_leaves_nothing_behind() {
    let data = temp_dir("ghosts");
    let server = Server::start(&data, &[]);
    let c = client();
    let stats = |c: &Client| -> Value {
        c.get(server.url("/api/stats"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let before = stats(&c);
    for n in 100_000..110_000u64 {
        let r = c
            .get(server.url(&format!("/api/tasks/{n}/events")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
    let after = stats(&c);
    assert_eq!(after["live_tasks"], 0, "{after}");
    assert_eq!(before["live_tasks"], 0);
    // Memory: nothing kept per request (the issue saw +117 MB over 3000 requests before).
    let rss = |v: &Value| v["memory"]["rss_bytes"].as_u64().unwrap();
    assert!(
        rss(&after) < rss(&before) + (16 << 20),
        "{} -> {}",
        rss(&before),
        rss(&after)
    );
}

#[test]
fn videos_deleted_while_their_frames_are_written_are_gone_whole() {
    let data = temp_dir("delete-running");
    let server = Server::start(&data, &[]);
    let c = client();
    // Scenes of 90 frames of 384x384: their PNGs take a while to write, and each video is
    // deleted while that goes on, at a different frame.
    let body = |seed: u64| {
        json!({"prompt": "a red ball bounces", "num_scenes": 2, "seed": seed, "steps": 2,
               "seconds_per_scene": 3.0, "fps": 30, "size": 384})
    };
    let mut ids = Vec::new();
    for i in 0..10u64 {
        let id = submit(&c, &server, &body(800 + i))["id"].as_u64().unwrap();
        ids.push(id);
        let frames = data.join(format!("artifacts/{id}/frames"));
        let at = 1 + (i as usize * 17) % 90;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_dir(&frames).map_or(0, |d| d.count()) < at && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let r = c
            .delete(server.url(&format!("/v1/videos/video_{id}")))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap();
        assert_eq!(status, 200, "video_{id} at frame {at}: {body}");
        assert_eq!(body["deleted"], true, "{body}");
        let r = c
            .get(server.url(&format!("/api/tasks/{id}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }
    // Once every task has left the engine, no file of a deleted one is left, nor written later.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: Value = c
            .get(server.url("/api/stats"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if stats["queue"]["depth"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the engine did not drain: {stats}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = ids
        .iter()
        .map(|id| data.join(format!("artifacts/{id}")))
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "files of deleted videos remain: {left:?}");
}

/// The events of a task's SSE stream up to `done`, as (event, data) pairs.
fn events_until_done(c: &Client, s: &Server, id: u64) -> Vec<(String, String)> {
    let r = c
        .get(s.url(&format!("/api/tasks/{id}/events")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut events = Vec::new();
    let mut event = String::new();
    for line in BufReader::new(r).lines() {
        let line = line.unwrap();
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            events.push((event.clone(), d.trim().to_string()));
            if event == "done" {
                break;
            }
        }
    }
    events
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG"));
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn a_wan_checkpoint_is_served_end_to_end() {
    let data = temp_dir("wan");
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/model/wan/tiny");
    let server = Server::start(&data, &["--model", &format!("wan:{tiny}")]);
    let c = client();

    // /readyz names the model and its size.
    let ready: Value = c.get(server.url("/readyz")).send().unwrap().json().unwrap();
    let info = &ready["backend"]["model_info"];
    assert_eq!(info["name"], "Wan2.1 text-to-video", "{ready}");
    let components = info["checkpoint"]["components"].as_array().unwrap();
    let parameters: u64 = components
        .iter()
        .map(|c| c["parameters"].as_u64().unwrap())
        .sum();
    assert_eq!(info["parameters"].as_u64(), Some(parameters));
    assert!(parameters > 100_000, "{info}");
    // The document describes this model's request.
    let doc: Value = c
        .get(server.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let fields = &doc["components"]["schemas"]["CreateTask"]["properties"];
    assert_eq!(fields["width"]["multipleOf"], 24, "{fields}");

    // Requests against its rules are refused, naming the rule, and store nothing.
    for (body, says) in [
        (json!({"prompt": "x", "size": 64}), "takes width and height"),
        (
            json!({"prompt": "x", "num_frames": 8}),
            "1 more than a multiple of 4",
        ),
        (
            json!({"prompt": "x", "width": 40}),
            "width must be a multiple of 24",
        ),
        (
            json!({"prompt": "x", "scheduler": "ddim"}),
            "scheduler must be one of",
        ),
    ] {
        let r = c.post(server.url("/api/tasks")).json(&body).send().unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let err: Value = r.json().unwrap();
        assert!(err["message"].as_str().unwrap().contains(says), "{err}");
    }
    let list: Value = c
        .get(server.url("/api/tasks"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["tasks"].as_array().map(Vec::len), Some(0), "{list}");

    let body = json!({"prompt": "A red fox runs through snow, then it leaps over a log.",
        "num_scenes": 2, "width": 48, "height": 32, "num_frames": 9, "steps": 3, "seed": 5,
        "negative_prompt": "blurry"});
    let id = submit(&c, &server, &body)["id"].as_u64().unwrap();
    let events = events_until_done(&c, &server, id);
    let frames: Vec<u64> = events
        .iter()
        .filter(|(e, _)| e == "frame")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Every frame streamed, in order, before the end.
    assert_eq!(frames, (0..18).collect::<Vec<_>>(), "{events:?}");
    assert_eq!(events.last().unwrap().0, "done");

    let done = wait_final(&c, &server, id);
    assert_eq!(done["status"], "completed", "{done}");
    let captions: Vec<&str> = done["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["caption"].as_str().unwrap())
        .collect();
    assert_eq!(
        captions,
        ["A red fox runs through snow", "it leaps over a log."]
    );
    assert_eq!(done["params"]["free_form"]["scheduler"], "unipc");
    assert_eq!(done["artifact"]["frame_count"], 18);

    let bytes = c
        .get(server.url(&format!("/api/tasks/{id}/video")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mp4 =
        mp4::Mp4Reader::read_header(std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
    let track = mp4.tracks().values().next().unwrap();
    // 2 scenes x 9 frames, 48 x 32, at Wan2.1's 16 fps.
    assert_eq!(track.sample_count(), 18);
    assert_eq!((track.width(), track.height()), (48, 32));
    assert_eq!(track.frame_rate().round(), 16.0);
    let png = c
        .get(server.url(&format!("/api/tasks/{id}/frames/17")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(png_size(&png), (48, 32));

    // The same request again is the same video, from the cache.
    let again = submit(&c, &server, &body)["id"].as_u64().unwrap();
    let again = wait_final(&c, &server, again);
    assert_eq!(again["cached"], true, "{again}");
}

/// Resident steps (each scene's latents kept on the backend between steps, the sampler run
/// there: the CPU's default) are the host path's arithmetic, so two tasks posted together
/// (their scenes stepping in one batch, with different step counts) give the same MP4 bytes
/// with `--resident-steps=false` as by default.
#[test]
fn resident_steps_serve_the_same_videos_as_the_host_path() {
    let c = client();
    let mut longer = small_task("a blue square moving right on a beige background", 8);
    longer["steps"] = json!(5);
    let bodies = [small_task("a small red circle moving left", 7), longer];
    let videos = |name: &str, extra: &[&str]| {
        let server = Server::start(&temp_dir(name), extra);
        let ready: Value = c.get(server.url("/readyz")).send().unwrap().json().unwrap();
        let resident = ready["backend"]["model_info"]["resident_steps"].as_bool();
        assert_eq!(resident, Some(extra.is_empty()), "{ready}");
        let ids: Vec<u64> = std::thread::scope(|scope| {
            let posts: Vec<_> = bodies
                .iter()
                .map(|b| scope.spawn(|| submit(&client(), &server, b)["id"].as_u64().unwrap()))
                .collect();
            posts.into_iter().map(|p| p.join().unwrap()).collect()
        });
        fresh_videos(&c, &server, &ids)
    };
    let host = videos("host-steps", &["--resident-steps=false"]);
    let resident = videos("resident-steps", &[]);
    assert_eq!(host.len(), 2);
    for (i, (h, r)) in host.iter().zip(&resident).enumerate() {
        assert!(!h.is_empty(), "task {i}: empty video");
        assert!(
            h == r,
            "task {i}: the resident path's MP4 differs from the host path's"
        );
    }
}
