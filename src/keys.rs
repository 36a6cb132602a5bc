//! `reel keys create|list|revoke`: API keys. With the server stopped they are changed in its
//! data dir directly; while it runs (sled lets one process open the store), through its admin
//! routes: `--url` and an admin key in `REEL_API_KEY` (in open mode, no key is needed to make
//! the first one).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use storage::{ApiKey, Store};

/// Where the keys are.
#[derive(Args)]
pub struct Target {
    /// The server's data dir (the server must be stopped) [default: ./data]
    #[arg(long, env = "REEL_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// A running server, e.g. http://127.0.0.1:8000, reached with REEL_API_KEY (an admin key)
    #[arg(long)]
    url: Option<String>,
}

/// What to do with keys.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key and print its token (shown this once)
    Create {
        /// A label for people
        #[arg(long)]
        name: String,
        /// An admin key sees every task and manages keys
        #[arg(long)]
        admin: bool,
        /// Priority of the key's tasks, 0 to 9 (default 5), also the most it may ask for
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
        priority: Option<u8>,
        #[command(flatten)]
        target: Target,
    },
    /// List keys (never their tokens)
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a key by its id, at once
    Revoke {
        /// The key's id (key_...)
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

fn key_line(k: &ApiKey) -> Value {
    json!({"id": k.id, "name": k.name, "admin": k.admin, "revoked": k.revoked,
           "created_ms": k.created_ms, "priority": k.priority})
}

fn open(target: &Target) -> anyhow::Result<Store> {
    Store::open(&target.data_dir).with_context(|| {
        format!(
            "opening {} (is the server running? then use --url with REEL_API_KEY)",
            target.data_dir.display()
        )
    })
}

/// Calls a running server's admin route.
fn remote(
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let client = reqwest::blocking::Client::new();
    let mut req = client.request(method, format!("{}{path}", url.trim_end_matches('/')));
    if let Ok(key) = std::env::var("REEL_API_KEY") {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().with_context(|| format!("reaching {url}"))?;
    let status = res.status();
    let doc: Value = res.json().context("reading the answer")?;
    if !status.is_success() {
        anyhow::bail!(
            "{status}: {}",
            doc["message"].as_str().unwrap_or("(no message)")
        );
    }
    Ok(doc)
}

/// Runs one keys command, printing JSON.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let out = match cmd {
        KeysCommand::Create {
            name,
            admin,
            priority,
            target,
        } => match &target.url {
            Some(url) => remote(
                url,
                reqwest::Method::POST,
                "/api/keys",
                Some(json!({"name": name, "admin": admin, "priority": priority})),
            )?,
            None => {
                let made = open(&target)?.create_key(&name, admin, priority)?;
                let mut v = key_line(&made.key);
                v["token"] = json!(made.token);
                v["webhook_secret"] = json!(made.key.webhook_secret);
                v
            }
        },
        KeysCommand::List { target } => match &target.url {
            Some(url) => remote(url, reqwest::Method::GET, "/api/keys", None)?,
            None => {
                json!({"keys": open(&target)?.keys()?.iter().map(key_line).collect::<Vec<_>>()})
            }
        },
        KeysCommand::Revoke { id, target } => match &target.url {
            Some(url) => remote(
                url,
                reqwest::Method::DELETE,
                &format!("/api/keys/{id}"),
                None,
            )?,
            None => key_line(
                &open(&target)?
                    .revoke_key(&id)?
                    .with_context(|| format!("no key {id}"))?,
            ),
        },
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
