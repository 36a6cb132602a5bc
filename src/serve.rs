//! `reel serve`: the HTTP API on a tokio runtime, the engine on its own worker threads.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kernels::GpuMonitor;

use crate::backend::EngineBackend;
use crate::config::Resolved;
use crate::runtime;

/// How often the metrics recorder folds recorded histogram samples into its summaries.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// How often expired artifacts are looked for.
const RETENTION_SWEEP: Duration = Duration::from_secs(600);

pub fn run(s: Resolved) -> anyhow::Result<()> {
    // Installed before the engine starts, so that everything it records is rendered.
    let prometheus = api::metrics::install_recorder().context("installing the metrics recorder")?;
    api::metrics::set_slow_request_threshold(Duration::from_millis(s.slow_request_ms));
    let rt = runtime::start(&s)?;
    let ready = serde_json::json!({
        "model": rt.model.id(),
        "device": rt.device,
        "post_processing": rt.post.describe(),
        "workers": s.workers,
        "max_batch": s.max_batch,
    });
    let gpu = rt.gpu_uuid.as_deref().and_then(|uuid| {
        GpuMonitor::open(uuid)
            .inspect_err(|e| tracing::warn!(error = %e, "no GPU figures in /metrics"))
            .ok()
    });
    let backend = Arc::new(EngineBackend::new(rt.engine.clone(), ready, gpu));
    let routes = api::routes_with_metrics(
        rt.store.clone(),
        backend,
        s.data_dir.clone(),
        prometheus.clone(),
    );
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async move {
        let listener = listen(s.port).with_context(|| format!("binding port {}", s.port))?;
        tracing::info!(port = s.port, data_dir = %s.data_dir.display(), "reel is serving");

        // Histogram samples pile up in the recorder until upkeep folds them in; a scrape does
        // it too, but a server nobody scrapes must not grow.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        });

        let (store, data_dir) = (rt.store.clone(), s.data_dir.clone());
        let max_age = Duration::from_secs(s.retention_hours * 3600);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RETENTION_SWEEP);
            loop {
                tick.tick().await;
                let (store, dir) = (store.clone(), data_dir.clone());
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
        });

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

/// Most connections the kernel queues before they are accepted (it caps this at
/// net.core.somaxconn). `TcpListener::bind` asks for 128: a burst of 1000 connections then
/// overflows the queue and the dropped SYNs come back only after the client's 1 s retransmit
/// timeout (docs/PERFORMANCE.md, "The burst's one-second tail").
const LISTEN_BACKLOG: u32 = 4096;

fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?; // as TcpListener::bind does
                                 // Accepted connections inherit this (Linux). Without it, a response written in two parts
                                 // (head, then a streamed body: SSE, video, frames) waits for the client's delayed ACK of
                                 // the first: 40 ms on Linux (docs/PERFORMANCE.md, "Nagle and the 40 ms answers").
    socket.set_nodelay(true)?;
    socket.bind(std::net::SocketAddr::from(([0, 0, 0, 0], port)))?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_nagle_delay() {
        let listener = listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(("127.0.0.1", addr.port()));
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (server_side, _) = accepted.unwrap();
        assert!(server_side.nodelay().unwrap(), "TCP_NODELAY is inherited");
        drop(client);
    }
}
