//! `reel serve`: the HTTP API on a tokio runtime, the engine on its own worker threads, and
//! the server's upkeep (metrics, retention, the disk floor).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use api::disk::DiskGuard;
use api::quota::Limits;
use kernels::GpuMonitor;
use tasks::TaskService;

use crate::backend::EngineBackend;
use crate::config::Resolved;
use crate::runtime;

/// How often the metrics recorder folds recorded histogram samples into its summaries.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// How often expired artifacts are looked for.
const RETENTION_SWEEP: Duration = Duration::from_secs(600);

/// How often free disk space is checked against the floor for running tasks.
const DISK_WATCH: Duration = Duration::from_secs(2);

/// Refuses to expose a server nobody can lock: no keys on a non-loopback address needs
/// `--insecure`. Returns whether the server runs open (no keys).
fn check_exposure(s: &Resolved, tasks: &TaskService) -> anyhow::Result<bool> {
    let open = !tasks.store().has_keys()?;
    if open && !s.host.is_loopback() && !s.insecure {
        anyhow::bail!(
            "refusing to serve on {} without API keys: anyone who reaches it could use it. \
             Create one first (`reel keys create --name admin --admin --data-dir {}`), \
             listen on 127.0.0.1, or pass --insecure",
            s.host,
            s.data_dir.display()
        );
    }
    if open {
        tracing::warn!(
            host = %s.host,
            "no API keys exist: the server runs open, every caller may do everything \
             (create a key with `reel keys create` or POST /api/keys to require keys)"
        );
    }
    Ok(open)
}

pub fn run(s: Resolved) -> anyhow::Result<()> {
    if s.process != 0 {
        // A cluster's other processes compute; process 0 serves.
        return runtime::member(&s);
    }
    // Installed before the engine starts, so that everything it records is rendered.
    let prometheus = api::metrics::install_recorder().context("installing the metrics recorder")?;
    api::metrics::set_slow_request_threshold(Duration::from_millis(s.slow_request_ms));
    let rt = runtime::start(&s)?;
    check_exposure(&s, &rt.tasks)?;
    let ready = serde_json::json!({
        "model": rt.model.spec().id,
        "model_info": rt.model.describe(),
        "device": rt.device,
        "post_processing": rt.post.describe(),
        "workers": s.workers,
        "max_batch": s.max_batch,
        "scene_stagger": s.scene_stagger,
        "previews": s.previews,
        "processes": s.processes,
    });
    let gpu = rt.gpu_uuid.as_deref().and_then(|uuid| {
        GpuMonitor::open(uuid)
            .inspect_err(|e| tracing::warn!(error = %e, "no GPU figures in /metrics"))
            .ok()
    });
    let backend: Arc<dyn api::Backend> = Arc::new(EngineBackend::new(
        rt.engine.clone(),
        ready,
        rt.model.spec().clone(),
        gpu,
    ));
    let min_free_disk = s.min_free_disk_mb << 20;
    let config = api::ApiConfig {
        data_dir: s.data_dir.clone(),
        limits: Limits {
            in_flight_per_key: s.key_max_in_flight,
            per_hour_per_key: s.key_max_per_hour,
            max_task_pixels: s.max_task_pixels,
            private_webhooks: s.webhook_private,
        },
        min_free_disk,
        cors_origins: s.cors_origins.clone(),
        prometheus: s.metrics_addr.is_none().then(|| prometheus.clone()),
    };
    let routes = api::routes(rt.tasks.clone(), backend.clone(), config)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async move {
        let addr = SocketAddr::new(s.host, s.port);
        let listener = listen(addr).with_context(|| format!("binding {addr}"))?;
        if let Some(metrics_addr) = s.metrics_addr {
            let scrape = api::metrics_only(
                rt.tasks.clone(),
                backend.clone(),
                s.data_dir.clone(),
                prometheus.clone(),
            );
            let metrics_listener =
                listen(metrics_addr).with_context(|| format!("binding {metrics_addr}"))?;
            tokio::spawn(warp::serve(scrape).incoming(metrics_listener).run());
            tracing::info!(%metrics_addr, "metrics served");
        }
        tracing::info!(%addr, port = s.port, data_dir = %s.data_dir.display(), "reel is serving");

        // Histogram samples pile up in the recorder until upkeep folds them in; a scrape does
        // it too, but a server nobody scrapes must not grow.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        });
        tokio::spawn(retention(
            rt.tasks.clone(),
            s.data_dir.clone(),
            Duration::from_secs(s.retention_hours * 3600),
        ));
        tokio::spawn(crate::webhooks::deliver(
            rt.tasks.store().clone(),
            s.webhook_private,
        ));
        tokio::spawn(watch_disk(
            rt.tasks.clone(),
            DiskGuard::new(s.data_dir.clone(), min_free_disk),
        ));

        warp::serve(routes)
            .incoming(listener)
            .graceful(async {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("shutting down");
            })
            .run()
            .await;
        anyhow::Ok(())
    })
}

/// Removes expired tasks (records, indexes, files) now and then.
async fn retention(tasks: Arc<TaskService>, data_dir: std::path::PathBuf, max_age: Duration) {
    let mut tick = tokio::time::interval(RETENTION_SWEEP);
    loop {
        tick.tick().await;
        let (store, dir) = (tasks.store().clone(), data_dir.clone());
        // One call removes a bounded batch; a backlog takes several.
        let sweep = tokio::task::spawn_blocking(move || loop {
            let r = store.remove_expired(&dir, max_age)?;
            if r.tasks > 0 {
                let (tasks, files, bytes) = (r.tasks, r.files, r.bytes);
                tracing::info!(tasks, files, bytes, "expired tasks removed");
            }
            if !r.more {
                // Every call retries the failures, so the last one lists them all.
                for (task, e) in &r.failed {
                    tracing::warn!(task, error = %e, "expired task kept, files left");
                }
                return Ok::<_, storage::StoreError>(());
            }
        });
        if let Ok(Err(e)) = sweep.await {
            tracing::warn!(error = %e, "retention sweep failed");
        }
    }
}

/// Fails the running tasks, with the reason, when free space drops below the floor: their
/// frames could not be written, and a failure can still be stored while the floor leaves
/// room. New tasks are refused meanwhile (the API checks the same floor); both recover by
/// themselves when space comes back.
async fn watch_disk(tasks: Arc<TaskService>, disk: DiskGuard) {
    let mut tick = tokio::time::interval(DISK_WATCH);
    loop {
        tick.tick().await;
        let Err(why) = disk.check() else { continue };
        let tasks = tasks.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for id in tasks.live_ids() {
                tasks.fail(id, &format!("stopped for want of disk space: {why}"));
            }
        })
        .await;
    }
}

/// Most connections the kernel queues before they are accepted (it caps this at
/// net.core.somaxconn). `TcpListener::bind` asks for 128: a burst of 1000 connections then
/// overflows the queue and the dropped SYNs come back only after the client's 1 s retransmit
/// timeout (docs/PERFORMANCE.md, "The burst's one-second tail").
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?; // as TcpListener::bind does
                                 // Accepted connections inherit this (Linux). Without it, a response written in two parts
                                 // (head, then a streamed body: SSE, video, frames) waits for the client's delayed ACK of
                                 // the first: 40 ms on Linux (docs/PERFORMANCE.md, "Nagle and the 40 ms answers").
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_nagle_delay() {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(("127.0.0.1", addr.port()));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (server_side, _) = accepted.unwrap();
        assert!(server_side.nodelay().unwrap(), "TCP_NODELAY is inherited");
        drop(client);
    }
}
