//! exposure: what making reel safe to expose costs and buys, measured side by side in one run.
//!
//! - `auth`: two servers from the same binary, one open (no keys) and one with an API key,
//!   take the same closed-loop read load (`--users` clients, each `GET /api/tasks/{id}` and
//!   `GET /api/tasks` in turn, `--requests` per round) in alternating rounds (`--rounds` each,
//!   open first); prints p50/p99 per round and the median of the rounds' p99 for each, and
//!   their ratio. The keyed server checks the token (SHA-256 and a sled read) on every call.
//! - `fairness`: one server with two keys; key A posts `--a-tasks` tasks, then key B posts one.
//!   Prints B's wait (from its POST to its completion) against A's tasks': with keys taking
//!   turns in denoising, B's single task does not wait behind A's queue.
//!
//! `cargo build --release && cargo run --release -p bench --bin exposure -- --scenario auth`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use bench::server::{find_reel, Server};
use bench::tally::Percentiles;
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Scenario {
    Auth,
    Fairness,
}

#[derive(Parser)]
#[command(about = "API p99 with and without keys; two keys' fairness")]
struct Args {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// `auth`: concurrent clients.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// `auth`: requests per round.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// `auth`: rounds per server, alternating.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// `fairness`: tasks key A posts before key B posts its one.
    #[arg(long, default_value_t = 50)]
    a_tasks: usize,
    /// The reel binary [default: `reel` next to this executable].
    #[arg(long)]
    reel_bin: Option<PathBuf>,
}

/// A small task: one scene, few steps, small frames (each seed its own, so no cache hits).
fn task(seed: u64) -> Value {
    json!({"prompt": "a red circle moving right", "num_scenes": 1, "steps": 8, "seed": seed,
           "seconds_per_scene": 1.0, "fps": 8, "size": 64})
}

/// Makes a key through the API (the server runs open until then); returns its token.
async fn make_key(
    http: &reqwest::Client,
    srv: &Server,
    name: &str,
    bearer: Option<&str>,
) -> Result<String> {
    let mut req = http
        .post(srv.url("/api/keys"))
        .json(&json!({"name": name, "admin": true}));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let made: Value = req.send().await?.error_for_status()?.json().await?;
    made["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token")
}

async fn post(
    http: &reqwest::Client,
    srv: &Server,
    token: Option<&str>,
    body: &Value,
) -> Result<u64> {
    let mut req = http.post(srv.url("/api/tasks")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let v: Value = req.send().await?.error_for_status()?.json().await?;
    v["id"].as_u64().context("no id")
}

/// One closed-loop round of reads; latencies in ms.
async fn round(
    srv: &Server,
    token: Option<&str>,
    id: u64,
    users: usize,
    requests: usize,
) -> Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let per_user = requests / users;
    let mut joins = Vec::new();
    for u in 0..users {
        let (http, token) = (http.clone(), token.map(str::to_owned));
        let paths = [srv.url(&format!("/api/tasks/{id}")), srv.url("/api/tasks")];
        joins.push(tokio::spawn(async move {
            let mut ms = Vec::with_capacity(per_user);
            for i in 0..per_user {
                let mut req = http.get(&paths[(u + i) % 2]);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let t = Instant::now();
                let res = req.send().await?;
                let ok = res.status().is_success();
                res.bytes().await?;
                ensure!(ok, "a read failed");
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(ms)
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for j in joins {
        all.extend(j.await??);
    }
    Ok(all)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn auth(bin: &Path, args: &Args) -> Result<()> {
    let http = reqwest::Client::new();
    let open = Server::start_ready(bin, &[]).await?;
    let keyed = Server::start_ready(bin, &[]).await?;
    let token = make_key(&http, &keyed, "bench", None).await?;
    // One stored task on each, for the GET by id.
    let id_open = post(&http, &open, None, &task(1)).await?;
    let id_keyed = post(&http, &keyed, Some(&token), &task(1)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // let both finish generating
    let (mut p99_open, mut p99_keyed) = (Vec::new(), Vec::new());
    for r in 0..args.rounds {
        for (name, srv, tok, id, out) in [
            ("open", &open, None, id_open, &mut p99_open),
            (
                "keys",
                &keyed,
                Some(token.as_str()),
                id_keyed,
                &mut p99_keyed,
            ),
        ] {
            let mut ms = round(srv, tok, id, args.users, args.requests).await?;
            let p = Percentiles::of(&mut ms);
            println!(
                "round {r} {name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
                p.p50,
                p.p99,
                p.max,
                ms.len()
            );
            out.push(p.p99);
        }
    }
    let (o, k) = (median(p99_open), median(p99_keyed));
    println!(
        "median p99: open {o:.2} ms, keys {k:.2} ms, keys/open x{:.2}",
        k / o
    );
    Ok(())
}

async fn fairness(bin: &Path, args: &Args) -> Result<()> {
    let http = reqwest::Client::new();
    let limit = (args.a_tasks + 10).to_string();
    let srv = Server::start_ready(
        bin,
        &[
            "--key-max-in-flight".into(),
            limit,
            "--max-cpu-percent".into(),
            "100".into(),
        ],
    )
    .await?;
    let admin = make_key(&http, &srv, "admin", None).await?;
    let mk = |name: &'static str| {
        let (http, admin) = (http.clone(), admin.clone());
        let srv_url = srv.url("/api/keys");
        async move {
            let made: Value = http
                .post(srv_url)
                .bearer_auth(admin)
                .json(&json!({"name": name}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(made["token"].as_str().context("no token")?.to_owned())
        }
    };
    let (a, b) = (mk("a").await?, mk("b").await?);
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..args.a_tasks {
        ids.push((
            post(&http, &srv, Some(&a), &task(100 + i as u64)).await?,
            'A',
        ));
    }
    let b_posted = started.elapsed();
    let b_id = post(&http, &srv, Some(&b), &task(99)).await?;
    ids.push((b_id, 'B'));
    // Poll until every task ended; note when each did.
    let mut done: Vec<(Duration, char, u64)> = Vec::new();
    while done.len() < ids.len() {
        ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "tasks did not finish"
        );
        for &(id, who) in &ids {
            if done.iter().any(|d| d.2 == id) {
                continue;
            }
            let t: Value = http
                .get(srv.url(&format!("/api/tasks/{id}")))
                .bearer_auth(&admin)
                .send()
                .await?
                .json()
                .await?;
            if t["status"] == "completed" {
                done.push((started.elapsed(), who, id));
            } else {
                ensure!(
                    t["status"] != "failed" && t["status"] != "cancelled",
                    "task {id}: {t}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.sort();
    let rank = done.iter().position(|d| d.1 == 'B').unwrap_or(0) + 1;
    let b_done = done
        .iter()
        .find(|d| d.1 == 'B')
        .map(|d| d.0)
        .unwrap_or_default();
    let a_last = done
        .iter()
        .filter(|d| d.1 == 'A')
        .map(|d| d.0)
        .max()
        .unwrap_or_default();
    println!(
        "key A: {} tasks posted in {:.2} s, last done at {:.2} s; key B: 1 task posted at {:.2} s, done at {:.2} s (waited {:.2} s), {} of {} to finish",
        args.a_tasks, b_posted.as_secs_f64(), a_last.as_secs_f64(), b_posted.as_secs_f64(),
        b_done.as_secs_f64(), (b_done - b_posted).as_secs_f64(), rank, done.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match &args.reel_bin {
        Some(b) => b.clone(),
        None => find_reel()?,
    };
    match args.scenario {
        Scenario::Auth => auth(&bin, &args).await,
        Scenario::Fairness => fairness(&bin, &args).await,
    }
}
