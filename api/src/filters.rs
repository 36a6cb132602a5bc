//! The routes: which path and method reach which handler. Paths are matched before methods so
//! that a known path with the wrong method is a 405 and an unknown path a 404. The whole tree
//! is wrapped in the request metrics of [`crate::metrics::instrument`].

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use storage::Store;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::backend::Backend;
use crate::handlers::{self, AppState};
use crate::models::MAX_BODY_BYTES;
use crate::stats::Probe;
use crate::{errors, media, metrics, openapi, sse, stats, stream};

/// The whole API without `GET /metrics`. `data_dir` is where artifacts' relative paths point.
pub fn routes(
    store: Arc<Store>,
    backend: Arc<dyn Backend>,
    data_dir: PathBuf,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    build(store, backend, data_dir, None)
}

/// The whole API with `GET /metrics` rendering `prometheus` (see
/// [`crate::metrics::install_recorder`]).
pub fn routes_with_metrics(
    store: Arc<Store>,
    backend: Arc<dyn Backend>,
    data_dir: PathBuf,
    prometheus: PrometheusHandle,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    build(store, backend, data_dir, Some(prometheus))
}

fn build(
    store: Arc<Store>,
    backend: Arc<dyn Backend>,
    data_dir: PathBuf,
    prometheus: Option<PrometheusHandle>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let probe = Arc::new(Probe::new(data_dir.clone()));
    let probe = warp::any().map(move || probe.clone());
    let st = AppState {
        store,
        backend,
        data_dir: Arc::new(data_dir),
    };
    let state = warp::any().map(move || st.clone());

    let create = warp::path!("api" / "tasks")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::json())
        .and(state.clone())
        .and_then(handlers::create);
    let list = warp::path!("api" / "tasks")
        .and(warp::get())
        .and(warp::query())
        .and(state.clone())
        .and_then(handlers::list);
    let get = warp::path!("api" / "tasks" / u64)
        .and(warp::get())
        .and(state.clone())
        .and_then(handlers::get);
    let cancel = warp::path!("api" / "tasks" / u64)
        .and(warp::delete())
        .and(state.clone())
        .and_then(handlers::cancel);
    let events = warp::path!("api" / "tasks" / u64 / "events")
        .and(warp::get())
        .and(state.clone())
        .and_then(sse::events);
    let live = warp::path!("api" / "tasks" / u64 / "stream")
        .and(warp::get())
        .and(state.clone())
        .and_then(stream::stream);
    let video = warp::path!("api" / "tasks" / u64 / "video")
        .and(warp::get())
        .and(warp::header::optional::<String>("range"))
        .and(state.clone())
        .and_then(media::video);
    let frame = warp::path!("api" / "tasks" / u64 / "frames" / usize)
        .and(warp::get())
        .and(state.clone())
        .and_then(media::frame);
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and_then(handlers::healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(state.clone())
        .and_then(handlers::readyz);
    let host_stats = warp::path!("api" / "stats")
        .and(warp::get())
        .and(state.clone())
        .and(probe.clone())
        .and_then(stats::stats);
    let spec = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| warp::reply::json(&openapi::spec()).into_response());

    // Boxed: keeps the combined type (and compile times) small.
    let mut rest: Vec<BoxedFilter<(Response,)>> = vec![
        create.boxed(),
        list.boxed(),
        get.boxed(),
        cancel.boxed(),
        events.boxed(),
        live.boxed(),
        video.boxed(),
        frame.boxed(),
        readyz.boxed(),
        spec.boxed(),
        host_stats.boxed(),
    ];
    if let Some(prometheus) = prometheus {
        let scrape = warp::path!("metrics")
            .and(warp::get())
            .map(move || prometheus.clone())
            .and(state)
            .and(probe)
            .and_then(metrics::scrape);
        rest.push(scrape.boxed());
    }
    let tree = rest
        .into_iter()
        .fold(healthz.boxed(), |acc, f| acc.or(f).unify().boxed())
        .recover(errors::recover)
        .unify();
    metrics::instrument(tree).with(warp::trace::request())
}
