//! A real `reel serve` for the scenarios: started on a free loopback port with a fresh data
//! dir, waited for (`/healthz`), and stopped and cleaned up on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// `reel serve` on a free loopback port with its own data dir.
pub struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("reel-load-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
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
        })
    }

    /// Starts the server and waits until it answers.
    pub async fn start_ready(bin: &Path, extra: &[String]) -> Result<Server> {
        let mut srv = Server::start(bin, extra)?;
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
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("reel exited ({status}):\n{}", self.log_tail());
            }
            if let Ok(r) = http.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("reel did not answer /healthz in 60 s:\n{}", self.log_tail())
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
