//! Cluster mode: timely's own multi-process communication, with a bounded start.
//!
//! N processes, each with the same `--workers`, connect over TCP into one timely computation
//! (`-n -p -h` in timely's words: `--processes`, `--process`, `--hostfile`, one `host:port`
//! per line, line `i` being process `i`'s listening address). Process `i` connects to every
//! process below it and accepts every one above it, as timely's own `create_sockets` does;
//! the sockets are then handed to timely (`initialize_networking_from_sockets`), which runs
//! its send and receive threads over them. What differs from timely's start: every wait is
//! bounded ([`Cluster::peer_timeout`]: a process that cannot reach its peers fails with an
//! error naming them, instead of retrying forever), the handshake carries a magic word and
//! the cluster size (a stray connection, or a peer started with another `--processes`, is
//! refused rather than joined), and the engine keeps a handle on each socket so that it can
//! take the mesh down on purpose ([`sever`]) when it restarts the computation.
//!
//! Timely has no recovery: when any process dies, every other one's communication threads
//! fail and its workers with them. The engine (`engine.rs`) makes that explicit: process 0
//! turns unavailable, severs what is left, forms the mesh again with the processes that come
//! back and queues every unfinished task again from the store; the other processes
//! ([`crate::engine::run_member`]) sever, and connect again, and exit when that fails within the timeout (so
//! whatever started them, `reel cluster --local` or a service manager, starts them again).

use std::any::Any;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

/// The first bytes of every connection between reel processes.
const MAGIC: &[u8; 8] = b"reel-tdf";

/// How long one connection attempt, or a handshake read, may take.
const ATTEMPT: Duration = Duration::from_secs(2);

/// Pause between attempts to reach a peer that is not listening yet.
const RETRY: Duration = Duration::from_millis(200);

/// Where this process sits in a cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Every process's listening address, by process index.
    pub addresses: Vec<String>,
    /// This process's index: 0 owns HTTP, the store and the task service.
    pub process: usize,
    /// The longest wait for the peers at each (re)start.
    pub peer_timeout: Duration,
    /// This process's listening socket, bound at the first `connect` and kept for the life of
    /// the process: between two meshes nothing else can take the port, and a peer that calls
    /// early waits in the backlog instead of being refused.
    listener: Arc<Mutex<Option<TcpListener>>>,
}

impl Cluster {
    /// Reads a hostfile (one `host:port` per line; blank lines and `#` comments skipped)
    /// for `processes` processes, of which this is `process`.
    pub fn from_hostfile(
        path: &Path,
        processes: usize,
        process: usize,
        peer_timeout: Duration,
    ) -> anyhow::Result<Cluster> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the hostfile {}", path.display()))?;
        let addresses: Vec<String> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if addresses.len() < processes {
            bail!(
                "the hostfile {} names {} processes; --processes is {processes}",
                path.display(),
                addresses.len()
            );
        }
        Cluster::new(addresses[..processes].to_vec(), process, peer_timeout)
    }

    /// A cluster of the processes at `addresses`, this one being `process`.
    pub fn new(
        addresses: Vec<String>,
        process: usize,
        peer_timeout: Duration,
    ) -> anyhow::Result<Cluster> {
        if addresses.len() < 2 {
            bail!("a cluster needs at least 2 processes");
        }
        if process >= addresses.len() {
            bail!(
                "--process {process} is not below --processes {}",
                addresses.len()
            );
        }
        for a in &addresses {
            if a.to_socket_addrs().is_err() {
                bail!("the cluster address {a:?} is not a host:port that resolves");
            }
        }
        Ok(Cluster {
            addresses,
            process,
            peer_timeout,
            listener: Arc::default(),
        })
    }

    /// Processes in the cluster.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// Connects to every other process (a bounded wait) and builds timely's allocators for
    /// `workers` workers over the sockets.
    pub fn connect(&self, workers: usize) -> anyhow::Result<Mesh> {
        let deadline = Instant::now() + self.peer_timeout;
        let me = self.process;
        let n = self.processes();
        let mut bound = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        let listener = match bound.take() {
            Some(l) => l,
            None => {
                let l = TcpListener::bind(&self.addresses[me]).with_context(|| {
                    format!("cannot listen on {} (process {me})", self.addresses[me])
                })?;
                l.set_nonblocking(true)?;
                l
            }
        };
        let listener = &*bound.insert(listener);
        let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
        // Below: we call them, in order; above: they call us. Both proceed together, since a
        // peer above may be waiting on our call to its own peers.
        let mut next_down = 0;
        while next_down < me || sockets[me + 1..].iter().any(Option::is_none) {
            if Instant::now() > deadline {
                let missing: Vec<String> = (0..n)
                    .filter(|&i| i != me && sockets[i].is_none())
                    .map(|i| format!("process {i} at {}", self.addresses[i]))
                    .collect();
                bail!(
                    "process {me} could not reach its peers within {:?}: {} missing (is each \
                     started with --processes {n} and the same hostfile?)",
                    self.peer_timeout,
                    missing.join(", ")
                );
            }
            let mut progressed = false;
            if next_down < me {
                if let Some(s) = call(&self.addresses[next_down], me, n) {
                    sockets[next_down] = Some(s);
                    next_down += 1;
                    progressed = true;
                }
            }
            while let Ok((stream, _)) = listener.accept() {
                if let Some((index, s)) = answer(stream, me, n) {
                    sockets[index] = Some(s);
                    progressed = true;
                }
            }
            if !progressed {
                std::thread::sleep(RETRY);
            }
        }
        let handles = sockets
            .iter()
            .flatten()
            .map(TcpStream::try_clone)
            .collect::<std::io::Result<Vec<_>>>()?;
        let hooks = Hooks::default();
        let local = ProcessBuilder::new_typed_vector(workers, hooks.refill.clone(), None);
        let (builders, guard) =
            initialize_networking_from_sockets(local, sockets, me, workers, hooks)
                .context("cannot start timely's communication threads")?;
        tracing::info!(process = me, processes = n, "cluster formed");
        Ok(Mesh {
            builders: builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
            guard: Box::new(guard),
            sockets: Arc::new(handles),
        })
    }
}

/// Calls process `to` at `address`; the socket once it answered our handshake, or None to
/// try again.
fn call(address: &str, me: usize, n: usize) -> Option<TcpStream> {
    let addr = address.to_socket_addrs().ok()?.next()?;
    let mut s = TcpStream::connect_timeout(&addr, ATTEMPT).ok()?;
    s.set_nodelay(true).ok()?;
    s.write_all(&hello(me, n)).ok()?;
    Some(s)
}

/// Accepts a caller's handshake: its process index and the socket, or None when it is not a
/// reel process of this cluster (dropped).
fn answer(mut s: TcpStream, me: usize, n: usize) -> Option<(usize, TcpStream)> {
    s.set_nonblocking(false).ok()?;
    s.set_read_timeout(Some(ATTEMPT)).ok()?;
    let mut buf = [0u8; 24];
    s.read_exact(&mut buf).ok()?;
    let index = u64::from_be_bytes(buf[8..16].try_into().ok()?) as usize;
    let size = u64::from_be_bytes(buf[16..24].try_into().ok()?) as usize;
    if &buf[..8] != MAGIC || size != n || index <= me || index >= n {
        tracing::warn!(
            peer = ?s.peer_addr().ok(),
            "refused a cluster connection: not a reel process of this cluster"
        );
        return None;
    }
    s.set_read_timeout(None).ok()?;
    s.set_nodelay(true).ok()?;
    Some((index, s))
}

fn hello(me: usize, n: usize) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&(me as u64).to_be_bytes());
    b[16..24].copy_from_slice(&(n as u64).to_be_bytes());
    b
}

/// A formed cluster: timely's allocators for this process's workers, its communication
/// threads (`guard`) and a handle on each socket.
pub struct Mesh {
    /// One per local worker, for `timely::execute::execute_from`.
    pub builders: Vec<AllocatorBuilder>,
    /// Timely's communication threads, joined when dropped.
    pub guard: Box<dyn Any + Send>,
    /// Handles on the sockets, to sever them.
    pub sockets: Arc<Vec<TcpStream>>,
}

/// Takes a mesh down on purpose: shuts every socket, so the communication threads here and
/// in every peer fail now instead of waiting on a peer that will not speak again.
pub fn sever(sockets: &[TcpStream]) {
    for s in sockets {
        let _ = s.shutdown(Shutdown::Both);
    }
}
