//! Prometheus metrics of the service: the recorder, the per-request instrumentation, and
//! `GET /metrics`.
//!
//! The pipeline records its own metrics through the `metrics` macros (stage timings, batch
//! sizes, cache hits...); [`install_recorder`] makes them, and everything recorded here,
//! renderable. [`instrument`] wraps the whole route tree: every request adds one observation to
//! `reel_http_request_duration_seconds{method, route, status}` (time to the response head;
//! streams keep flowing after it) and is counted in `reel_http_requests_in_flight` while it
//! is served; it is logged too: at `debug` with its time, at `warn` as a "slow request" past
//! [`set_slow_request_threshold`]. `route` is the matched entry of the route table
//! ([`crate::routes::template_of`]),
//! so the label set stays bounded whatever paths clients send. Process CPU and memory, task counts by state,
//! the queue and, when the model runs on CUDA, the GPU's utilisation and memory
//! (`reel_gpu_*`) are sampled when `/metrics` is scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use warp::http::{header::CONTENT_TYPE, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use tasks::TaskService;

use crate::backend::Backend;
use crate::errors::ApiError;
use crate::routes::template_of;
use crate::stats::Probe;

/// The request latency histogram.
pub const REQUEST_SECONDS: &str = "reel_http_request_duration_seconds";
/// Requests being served.
pub const IN_FLIGHT: &str = "reel_http_requests_in_flight";

/// Histogram buckets of request latency, in seconds: sub-millisecond reads to slow writes.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
/// Fails only when some other recorder is already installed.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Standard methods by name; anything else is one label value.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Requests slower than this (to the response head) are logged at `warn`; default 100 ms,
/// the API's latency target.
static SLOW_REQUEST_MS: AtomicU64 = AtomicU64::new(100);

/// Sets the slow-request threshold of every [`instrument`]ed route tree in this process.
pub fn set_slow_request_threshold(threshold: Duration) {
    SLOW_REQUEST_MS.store(threshold.as_millis() as u64, Ordering::Relaxed);
}

fn slow_request_threshold() -> Duration {
    Duration::from_millis(SLOW_REQUEST_MS.load(Ordering::Relaxed))
}

/// One request being served: counted in flight until dropped (answered or abandoned).
struct InFlight {
    method: &'static str,
    route: &'static str,
    started: Instant,
}

impl InFlight {
    fn start(method: Method, path: FullPath) -> InFlight {
        ::metrics::gauge!(IN_FLIGHT).increment(1.0);
        InFlight {
            method: method_label(&method),
            route: template_of(path.as_str()),
            started: Instant::now(),
        }
    }

    fn finish(self, status: StatusCode) {
        let took = self.started.elapsed();
        ::metrics::histogram!(
            REQUEST_SECONDS,
            "method" => self.method,
            "route" => self.route,
            "status" => status.as_str().to_owned(),
        )
        .record(took.as_secs_f64());
        let ms = took.as_secs_f64() * 1e3;
        let (method, route, status) = (self.method, self.route, status.as_u16());
        if took >= slow_request_threshold() {
            tracing::warn!(method, route, status, ms, "slow request");
        } else {
            tracing::debug!(method, route, status, ms, "request");
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        ::metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}

/// `inner` (which never rejects: its rejections are already recovered) with every request
/// timed and counted.
pub fn instrument<F, R>(
    inner: F,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone
where
    F: Filter<Extract = (R,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    warp::method()
        .and(warp::path::full())
        .map(InFlight::start)
        .and(inner)
        .map(|req: InFlight, reply: R| {
            let res = reply.into_response();
            req.finish(res.status());
            res
        })
}

/// What `GET /metrics` samples and renders.
pub struct Scraper {
    /// The recorder's handle.
    pub prometheus: PrometheusHandle,
    /// Task counts and live tasks.
    pub tasks: Arc<TaskService>,
    /// Queue and GPU.
    pub backend: Arc<dyn Backend>,
    /// The process.
    pub probe: Arc<Probe>,
}

/// `GET /metrics` (an admin key, or the separate `--metrics-addr` listener): samples the
/// process and the task store, then renders every metric in the Prometheus text format.
pub async fn scrape(s: Arc<Scraper>) -> Result<Response, Rejection> {
    let body = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let process = s.probe.process().map_err(ApiError::internal)?;
        ::metrics::gauge!("reel_process_cpu_percent").set(f64::from(process.cpu_percent));
        ::metrics::gauge!("reel_process_resident_memory_bytes").set(process.rss_bytes as f64);
        ::metrics::gauge!("reel_live_tasks").set(s.tasks.live_count() as f64);
        for (status, n) in s.tasks.store().counts()? {
            ::metrics::gauge!("reel_tasks", "status" => status.name()).set(n as f64);
        }
        ::metrics::gauge!("reel_queue_depth").set(s.backend.queue_depth() as f64);
        ::metrics::gauge!("reel_queue_bound").set(s.backend.queue_bound() as f64);
        if let Some(gpu) = s.backend.gpu() {
            ::metrics::gauge!("reel_gpu_utilization_percent")
                .set(f64::from(gpu.utilization_percent));
            ::metrics::gauge!("reel_gpu_memory_used_bytes").set(gpu.memory_used_bytes as f64);
            ::metrics::gauge!("reel_gpu_memory_total_bytes").set(gpu.memory_total_bytes as f64);
        }
        s.prometheus.run_upkeep();
        Ok(s.prometheus.render())
    })
    .await
    .map_err(|e| ApiError::internal(format_args!("metrics task: {e}")))??;
    let mut res = body.into_response();
    res.headers_mut().insert(
        CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Log lines written while `f` runs on this thread, `debug` and up.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = buf.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    fn answer(route: &'static str, status: StatusCode) {
        let req = InFlight {
            method: "GET",
            route,
            started: Instant::now(),
        };
        std::thread::sleep(Duration::from_millis(2));
        req.finish(status);
    }

    #[test]
    fn slow_requests_are_logged_as_warnings_the_rest_at_debug() {
        set_slow_request_threshold(Duration::from_millis(1));
        let slow = logged(|| answer("/api/tasks", StatusCode::OK));
        set_slow_request_threshold(Duration::from_secs(3600));
        let fast = logged(|| answer("/healthz", StatusCode::NOT_FOUND));
        set_slow_request_threshold(Duration::from_millis(100));

        assert!(
            slow.contains("WARN") && slow.contains("slow request"),
            "{slow}"
        );
        assert!(slow.contains("route=\"/api/tasks\"") && slow.contains("status=200"));
        assert!(fast.contains("DEBUG") && !fast.contains("slow"), "{fast}");
        assert!(fast.contains("route=\"/healthz\"") && fast.contains("status=404"));
        let ms: f64 = fast
            .split("ms=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("the time is logged");
        assert!(ms >= 2.0, "{fast}");
    }
}
