//! A real `reel serve` for the scenarios, or the peer stack (`bench/peer/serve.sh`: FastAPI +
//! Celery + Redis + PyTorch) in its place: started on a free loopback port with a fresh data
//! dir, waited for (`/healthz`), and stopped and cleaned up on drop.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// `reel serve` (or the peer) on a free loopback port with its own data dir.
pub struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
    /// The peer runs as a process group of its own (its supervisor script, Redis, the Celery
    /// worker, uvicorn), stopped as one; reel is a single process.
    group: bool,
}

/// A free loopback port and a fresh directory for a server's data and log.
fn port_and_dir(name: &str) -> Result<(u16, PathBuf)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("{name}-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok((port, dir))
}

/// The reel binary of this build: next to this executable (a `bench` binary in
/// `target/release/`), or one level up (a test executable in `target/release/deps/`).
/// Nothing is built here: run `cargo build --release` first.
pub fn find_reel() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let here = exe.with_file_name("reel");
    let up = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("reel"))
        .unwrap_or_else(|| here.clone());
    [here, up]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no reel binary next to {} or one level up: run `cargo build --release` first, or pass --reel-bin",
                exe.display()
            )
        })
}

impl Server {
    /// Starts `bin serve` with `extra` arguments (stderr goes to a log in the data dir).
    pub fn start(bin: &Path, extra: &[String]) -> Result<Server> {
        let (port, dir) = port_and_dir("reel-load")?;
        let log = File::create(dir.join("server.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Server {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
            group: false,
        })
    }

    /// Starts the peer: `script` (`bench/peer/serve.sh`) with `--port` and `--data-dir`, in a
    /// process group of its own, its worker planning with `reel_bin`'s `plan` (stdout and
    /// stderr go to a log in the data dir's parent).
    pub fn start_peer(script: &Path, reel_bin: &Path) -> Result<Server> {
        let (port, dir) = port_and_dir("reel-peer")?;
        let log = File::create(dir.join("server.log"))?;
        let child = Command::new(script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("REEL_BIN", reel_bin)
            .process_group(0)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        Ok(Server {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
            group: true,
        })
    }

    /// Starts the server and waits until it answers.
    pub async fn start_ready(bin: &Path, extra: &[String]) -> Result<Server> {
        let mut srv = Server::start(bin, extra)?;
        srv.ready(&reqwest::Client::new()).await?;
        Ok(srv)
    }

    /// Starts the peer ([`Server::start_peer`]) and waits until it answers.
    pub async fn start_peer_ready(script: &Path, reel_bin: &Path) -> Result<Server> {
        let mut srv = Server::start_peer(script, reel_bin)?;
        srv.ready(&reqwest::Client::new()).await?;
        Ok(srv)
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's base URL, `http://127.0.0.1:{port}`, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The server's data dir (sled and artifacts).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    /// The URL of `path` (starting with `/`) on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for `/healthz`; fails with the server's log if it exits or never answers.
    pub async fn ready(&mut self, http: &reqwest::Client) -> Result<()> {
        // The peer loads torch and the model in its worker before it serves.
        let deadline = Instant::now() + Duration::from_secs(if self.group { 180 } else { 60 });
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited ({status}):\n{}", self.log_tail());
            }
            if let Ok(r) = http.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the server did not answer /healthz in time:\n{}",
            self.log_tail()
        )
    }

    /// The last few kilobytes of the server's stderr.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let mut start = log.len().saturating_sub(4000);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_owned()
    }
}

impl Server {
    /// Stops the peer's process group: SIGTERM (its script stops each process by PID), and
    /// SIGKILL to whatever is left after ten seconds.
    fn stop_group(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal("-KILL");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.group {
            self.stop_group();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
