//! Cluster mode end to end: `reel cluster --local 3` (three processes of the real binary,
//! timely over real loopback TCP between them), tasks submitted to process 0's HTTP API.
//! Which process denoised what is read from `reel_run_steps_total{process}`, which process 0
//! counts from the steps each process reports through the dataflow.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::Client;
use serde_json::json;

/// Six distinct tasks' prompts.
const PROMPTS: [&str; 6] = [
    "a red circle moves left",
    "a blue square moves right",
    "a green triangle moves up",
    "a yellow star spins",
    "a white dot moves down",
    "a purple square grows",
];

/// A base port with the two above it free too: process i listens on base + i.
fn free_ports(n: u16) -> u16 {
    loop {
        let base = free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        if (1..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

/// `reel cluster --local 3` serving on a free port, one worker and one compute thread each.
fn cluster(data: &Path, extra: &[&str]) -> Server {
    let base = free_ports(3).to_string();
    let command = ["cluster", "--local", "3", "--cluster-port", &base];
    let mut args = vec!["--compute-threads", "1", "--max-cpu-percent", "100"];
    args.extend_from_slice(extra);
    Server::try_start_as(&command, data, &args)
        .unwrap_or_else(|log| panic!("cluster did not start: {log}"))
}

/// Sampler steps taken by each process (index: process), as process 0 counted them.
fn run_steps(c: &Client, s: &Server) -> [u64; 3] {
    let text = metrics(c, s);
    [0, 1, 2].map(|p| counter(&text, &format!("reel_run_steps_total{{process=\"{p}\"}}")))
}

/// `/api/stats`' denoisers: each worker's scenes, in every process.
fn denoisers(c: &Client, s: &Server) -> Vec<serde_json::Value> {
    let stats: serde_json::Value = c.get(s.url("/api/stats")).send().unwrap().json().unwrap();
    stats["denoisers"].as_array().cloned().unwrap_or_default()
}

/// Tasks moved to `completed`, as the metrics counted them.
fn completions(c: &Client, s: &Server) -> u64 {
    counter(
        &metrics(c, s),
        "reel_task_transitions_total{status=\"completed\"}",
    )
}

/// Waits until a process has taken steps beyond `before`; returns which.
fn busy_process(c: &Client, s: &Server, before: [u64; 3]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = run_steps(c, s);
        if let Some(p) = (0..3).find(|&p| now[p] > before[p]) {
            return p;
        }
        assert!(Instant::now() < deadline, "no process took a step");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid of cluster member `process`, a child of the `reel cluster` process `parent`.
fn member_pid(parent: u32, process: usize) -> u32 {
    let tasks = std::fs::read_dir(format!("/proc/{parent}/task")).unwrap();
    let children = tasks.flatten().flat_map(|t| {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        list.split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .collect::<Vec<_>>()
    });
    let wanted = process.to_string();
    children
        .into_iter()
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.windows(2)
                .any(|w| w[0] == b"--process" && w[1] == wanted.as_bytes())
        })
        .unwrap_or_else(|| panic!("no member process {process} under {parent}"))
}

#[test]
fn tasks_made_by_three_processes_are_the_videos_one_process_makes() {
    let one = Server::start(&temp_dir("cluster-same-one"), &[]);
    let three = cluster(&temp_dir("cluster-same-three"), &[]);
    let c = client();
    let tasks: Vec<_> = PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| small_task(p, i as u64 + 1))
        .collect();
    let ids: Vec<(u64, u64)> = tasks
        .iter()
        .map(|t| {
            let a = submit(&c, &one, t)["id"].as_u64().unwrap();
            let b = submit(&c, &three, t)["id"].as_u64().unwrap();
            (a, b)
        })
        .collect();
    for &(a, b) in &ids {
        assert_eq!(wait_final(&c, &one, a)["status"], "completed");
        let done = wait_final(&c, &three, b);
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(
            video_of(&c, &one, a),
            video_of(&c, &three, b),
            "task {b}'s video differs from one process's"
        );
    }
    let steps = run_steps(&c, &three);
    // 6 tasks x 2 scenes x 3 steps, spread over the processes by the tasks' hashes.
    assert_eq!(steps.iter().sum::<u64>(), 6 * 2 * 3, "{steps:?}");
    assert!(
        steps[1] + steps[2] > 0,
        "no scene was denoised outside process 0: {steps:?}"
    );
    assert_eq!(completions(&c, &three), 6);
}

#[test]
fn a_cancellation_stops_the_work_in_another_process() {
    let server = cluster(&temp_dir("cluster-cancel"), &[]);
    let c = client();
    // Tasks land on processes by a hash of their parameters: take seeds until one runs on a
    // process other than 0 (cancelling the others).
    let mut found = None;
    for seed in 1..20 {
        let mut body = small_task("a green triangle moving up", seed);
        body["steps"] = json!(100);
        body["num_scenes"] = json!(8);
        let before = run_steps(&c, &server);
        let id = submit(&c, &server, &body)["id"].as_u64().unwrap();
        let p = busy_process(&c, &server, before);
        if p != 0 {
            found = Some((id, p));
            break;
        }
        cancel(&c, &server, id);
        assert_eq!(wait_final(&c, &server, id)["status"], "cancelled");
    }
    let (id, p) = found.expect("some task ran outside process 0");
    // /api/stats shows that process's denoiser busy with it (7 of its 8 scenes waiting: the
    // scenes are staggered).
    let busy = denoisers(&c, &server);
    assert!(
        busy.iter()
            .any(|d| d["process"] == p && d["running"] == 1 && d["waiting"] == 7),
        "{busy:?}"
    );
    cancel(&c, &server, id);
    assert_eq!(wait_final(&c, &server, id)["status"], "cancelled");
    // Process p stops within a step or two of hearing it (800 steps were left).
    std::thread::sleep(Duration::from_millis(500));
    let after = run_steps(&c, &server)[p];
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(run_steps(&c, &server)[p], after, "process {p} went on");
    assert!(after < 8 * 100, "the task ran to the end: {after} steps");
    let idle = denoisers(&c, &server);
    assert!(
        idle.iter()
            .all(|d| d["waiting"] == 0 && d["running"] == 0 && d["following"] == 0),
        "{idle:?}"
    );
}

#[test]
fn killing_a_member_mid_generation_loses_no_task_and_completes_none_twice() {
    let server = cluster(&temp_dir("cluster-kill"), &[]);
    let c = client();
    let ids: Vec<u64> = PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut body = small_task(p, 100 + i as u64);
            body["steps"] = json!(30);
            submit(&c, &server, &body)["id"].as_u64().unwrap()
        })
        .collect();
    // Kill the first member seen denoising, mid-run.
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        let steps = run_steps(&c, &server);
        if let Some(p) = (1..3).find(|&p| steps[p] > 0) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no member took a step: {steps:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let pid = member_pid(server.child.id(), victim);
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for &id in &ids {
        let done = wait_final(&c, &server, id);
        assert_eq!(done["status"], "completed", "{done}");
        assert!(!video_of(&c, &server, id).is_empty());
    }
    // Each completed exactly once, although some ran twice. (The counter moves just after
    // the record is written, so wait for it first.)
    let n = ids.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while completions(&c, &server) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(completions(&c, &server), n);
    // The cluster is whole again and serves a new task.
    let next = submit(&c, &server, &small_task("a white dot", 7))["id"]
        .as_u64()
        .unwrap();
    assert_eq!(wait_final(&c, &server, next)["status"], "completed");
}

#[test]
fn ten_identical_tasks_are_denoised_once_across_the_cluster() {
    let server = cluster(&temp_dir("cluster-shared"), &[]);
    let c = client();
    let mut body = small_task("a yellow star spins", 11);
    body["steps"] = json!(40);
    let videos = fresh_videos(&c, &server, &submit_at_once(&server, &body, 10));
    // Ten tasks, one run per scene: 2 x 40 steps in all, in whichever process.
    let steps = run_steps(&c, &server);
    assert_eq!(steps.iter().sum::<u64>(), 2 * 40, "{steps:?}");
    assert!(videos.iter().all(|v| v == &videos[0]), "the videos differ");
}

#[test]
fn a_process_that_cannot_reach_its_peers_fails_with_a_clear_error_in_bounded_time() {
    let data = temp_dir("cluster-alone");
    let base = free_ports(2);
    let hostfile = data.join("hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{base}\n127.0.0.1:{}\n", base + 1),
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["serve", "--processes", "2", "--process", "1", "--hostfile"])
        .arg(&hostfile)
        .args(["--peer-timeout-secs", "2"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        log.contains("could not reach its peers") && log.contains("process 0 at 127.0.0.1"),
        "{log}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // A cluster without a hostfile is refused before anything starts.
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["serve", "--processes", "2", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --hostfile"));
}
