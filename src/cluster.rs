//! `reel cluster --local N`: a cluster of N processes on this machine, over loopback TCP.
//!
//! This process is process 0 (`reel serve` with every flag given here); it writes a hostfile
//! (`127.0.0.1:PORT+i` for process i) under the data directory and starts processes 1..N as
//! `reel serve --processes N --process i --hostfile FILE` with the same flags, starting any
//! that exits again (a killed member comes back and the cluster re-forms; see
//! `pipeline::cluster`). The members die with this process (Linux's parent-death signal).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::config::Settings;
use crate::serve;

/// `reel cluster`'s own flags; every `reel serve` flag is taken too, and passed on.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Processes to run on this machine (this one is process 0)
    #[arg(long, value_parser = clap::value_parser!(u16).range(2..=64))]
    pub local: u16,
    /// Process i listens for its peers on 127.0.0.1:(cluster-port + i)
    #[arg(long, default_value_t = 7100)]
    pub cluster_port: u16,
    #[command(flatten)]
    pub serve: Settings,
}

/// How long a member that exited waits before it is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let n = args.local as usize;
    let data_dir = args
        .serve
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./data"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let hostfile = data_dir.join("cluster-hosts");
    let hosts: String = (0..n)
        .map(|i| format!("127.0.0.1:{}\n", args.cluster_port as usize + i))
        .collect();
    std::fs::write(&hostfile, hosts).with_context(|| format!("writing {}", hostfile.display()))?;
    let passed = passed_on(std::env::args().skip(2));
    let exe = std::env::current_exe().context("finding the reel binary")?;
    {
        let hostfile = hostfile.clone();
        std::thread::Builder::new()
            .name("reel-members".into())
            .spawn(move || keep_members(&exe, &hostfile, n, &passed))?;
    }
    let mut settings = args.serve;
    settings.processes = Some(n);
    settings.process = Some(0);
    settings.hostfile = Some(hostfile);
    serve::run(settings.resolve()?)
}

/// The command line given to `reel cluster`, less its own flags: what every member gets.
fn passed_on(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        match a.as_str() {
            "--local" | "--cluster-port" => skip_value = true,
            _ if a.starts_with("--local=") || a.starts_with("--cluster-port=") => {}
            _ => out.push(a),
        }
    }
    out
}

/// Starts members 1..n, and starts again any that exits, for as long as this process lives.
fn keep_members(exe: &Path, hostfile: &Path, n: usize, passed: &[String]) {
    let start = |i: usize| -> Option<Child> {
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .args(passed)
            .args(["--processes", &n.to_string()])
            .args(["--process", &i.to_string()])
            .arg("--hostfile")
            .arg(hostfile);
        die_with_parent(&mut cmd);
        cmd.spawn()
            .inspect_err(|e| tracing::error!(process = i, error = %e, "cannot start a member"))
            .ok()
    };
    let mut children: Vec<Option<Child>> = (1..n).map(start).collect();
    loop {
        std::thread::sleep(RESTART_DELAY);
        for (k, child) in children.iter_mut().enumerate() {
            let i = k + 1;
            let exited = match child {
                Some(c) => c.try_wait().ok().flatten(),
                None => None,
            };
            if child.is_none() || exited.is_some() {
                tracing::warn!(process = i, status = ?exited, "cluster member exited; starting it again");
                *child = start(i);
            }
        }
    }
}

/// Has the child killed when the thread that started it (here: for the life of the process)
/// ends, so members never outlive `reel cluster`.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the child; it allocates nothing
        // and is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::passed_on;

    #[test]
    fn the_clusters_own_flags_are_not_passed_on() {
        let args = [
            "--local",
            "3",
            "--port",
            "9000",
            "--cluster-port=7200",
            "--workers",
            "2",
        ];
        let passed = passed_on(args.iter().map(|s| s.to_string()));
        assert_eq!(passed, ["--port", "9000", "--workers", "2"]);
    }
}
