//! The `burst` scenario: many connections, one request each, at the same moment.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::client::{outcome, timed};
use crate::server::Server;
use crate::tally::{Summary, Tally};

/// Result of the `burst` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BurstResult {
    /// Clients, each on its own connection with one request.
    pub connections: usize,
    /// Seconds from the clients' start to the last answer.
    pub wall_s: f64,
    /// The requests together.
    pub total: Summary,
}

/// `n` clients, each on its own connection, send one `GET /api/tasks` at the same moment.
pub async fn burst(srv: &Server, n: usize) -> Result<BurstResult> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        // One client each: its own pool, so its own connection.
        clients.push(
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?,
        );
    }
    let started = Instant::now();
    let url = srv.url("/api/tasks");
    let handles: Vec<_> = clients
        .into_iter()
        .map(|http| {
            let (barrier, url) = (barrier.clone(), url.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let (took, res) = timed(http.get(url)).await;
                (took, outcome(&res))
            })
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        let (took, outcome) = h.await?;
        tally.record(took, outcome);
    }
    let wall = started.elapsed();
    Ok(BurstResult {
        connections: n,
        wall_s: wall.as_secs_f64(),
        total: tally.summary(wall),
    })
}
