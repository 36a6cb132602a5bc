//! The routes: which path and method reach which handler, who may call it, and the wrapping
//! every request gets (CORS when configured, the request metrics, one JSON error shape).
//! Paths are matched before methods and methods before the caller's key, so that a known
//! path with the wrong method is a 405, an unknown path a 404, and a known route without a
//! valid key a 401. Each route's path, method and access are its entry in
//! [`crate::routes::ROUTES`]; the tests check that every entry is served here.

use std::path::PathBuf;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tasks::TaskService;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::auth::{Auth, Caller};
use crate::backend::Backend;
use crate::disk::DiskGuard;
use crate::handlers::{self, AppState};
use crate::metrics::Scraper;
use crate::models::MAX_BODY_BYTES;
use crate::quota::{Limits, Quotas};
use crate::routes::Access;
use crate::stats::Probe;
use crate::{errors, media, metrics, openai, openapi, page, sse, stats, stream};

/// Everything the API is built from.
pub struct ApiConfig {
    /// Where artifacts' relative paths point.
    pub data_dir: PathBuf,
    /// Per-key and per-task limits.
    pub limits: Limits,
    /// Free bytes under which new tasks are refused (0: no floor).
    pub min_free_disk: u64,
    /// Origins allowed by CORS; empty: CORS off (browsers' same-origin rule applies).
    pub cors_origins: Vec<String>,
    /// Serve `GET /metrics` on this router (admin only); `None` when the binary serves it
    /// on its own `--metrics-addr` listener instead (see [`metrics_only`]), or not at all.
    pub prometheus: Option<PrometheusHandle>,
}

impl ApiConfig {
    /// Defaults for `data_dir`: default limits, no disk floor, no CORS, no `/metrics`.
    pub fn new(data_dir: PathBuf) -> ApiConfig {
        ApiConfig {
            data_dir,
            limits: Limits::default(),
            min_free_disk: 0,
            cors_origins: Vec::new(),
            prometheus: None,
        }
    }
}

/// The whole API over `tasks` and `backend`.
pub fn routes(
    tasks: Arc<TaskService>,
    backend: Arc<dyn Backend>,
    config: ApiConfig,
) -> Result<BoxedFilter<(Response,)>, storage::StoreError> {
    let store = tasks.store().clone();
    let st = AppState {
        auth: Arc::new(Auth::new(store.clone())?),
        quotas: Arc::new(Quotas::from_store(&store)?),
        tasks,
        backend,
        data_dir: Arc::new(config.data_dir.clone()),
        limits: config.limits,
        disk: Arc::new(DiskGuard::new(
            config.data_dir.clone(),
            config.min_free_disk,
        )),
    };
    Ok(build(st, config))
}

/// A JSON body of at most [`MAX_BODY_BYTES`].
fn json_body<T: serde::de::DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = Rejection> + Copy {
    warp::body::content_length_limit(MAX_BODY_BYTES).and(warp::body::json())
}

fn build(st: AppState, config: ApiConfig) -> BoxedFilter<(Response,)> {
    let probe = Arc::new(Probe::new(config.data_dir.clone()));
    let probe = warp::any().map(move || probe.clone());
    let state = {
        let st = st.clone();
        warp::any().map(move || st.clone())
    };
    // The caller, if allowed `access`; a 401/403 otherwise.
    let caller = |access: Access| {
        let st = st.clone();
        warp::header::optional::<String>("authorization").and_then(move |h: Option<String>| {
            let auth = st.auth.clone();
            async move { auth.check(h.as_deref(), access).map_err(Rejection::from) }
        })
    };
    let key = || caller(Access::Key);
    // The same check for the OpenAI-style routes, whose errors take OpenAI's shape.
    let v1_key = || {
        let st = st.clone();
        warp::header::optional::<String>("authorization").and_then(move |h: Option<String>| {
            let auth = st.auth.clone();
            async move {
                auth.check(h.as_deref(), Access::Key)
                    .map_err(|e| warp::reject::custom(openai::OpenAiError::from(e)))
            }
        })
    };
    let admin = || caller(Access::Admin);

    let create = warp::path!("api" / "tasks")
        .and(warp::post())
        .and(key())
        .and(json_body())
        .and(state.clone())
        .and_then(handlers::create);
    let list = warp::path!("api" / "tasks")
        .and(warp::get())
        .and(key())
        .and(warp::query())
        .and(state.clone())
        .and_then(handlers::list);
    let get = warp::path!("api" / "tasks" / u64)
        .and(warp::get())
        .and(key())
        .and(state.clone())
        .and_then(handlers::get);
    let cancel = warp::path!("api" / "tasks" / u64)
        .and(warp::delete())
        .and(key())
        .and(state.clone())
        .and_then(handlers::cancel);
    let events = warp::path!("api" / "tasks" / u64 / "events")
        .and(warp::get())
        .and(key())
        .and(state.clone())
        .and_then(sse::events);
    let live = warp::path!("api" / "tasks" / u64 / "stream")
        .and(warp::get())
        .and(key())
        .and(state.clone())
        .and_then(stream::stream);
    let video = warp::path!("api" / "tasks" / u64 / "video")
        .and(warp::get())
        .and(key())
        .and(warp::header::optional::<String>("range"))
        .and(state.clone())
        .and_then(media::video);
    let frame = warp::path!("api" / "tasks" / u64 / "frames" / usize)
        .and(warp::get())
        .and(key())
        .and(state.clone())
        .and_then(media::frame);
    let create_key = warp::path!("api" / "keys")
        .and(warp::post())
        .and(admin())
        .and(json_body())
        .and(state.clone())
        .and_then(handlers::create_key);
    let list_keys = warp::path!("api" / "keys")
        .and(warp::get())
        .and(admin())
        .and(state.clone())
        .and_then(handlers::list_keys);
    let revoke_key = warp::path!("api" / "keys" / String)
        .and(warp::delete())
        .and(admin())
        .and(state.clone())
        .and_then(handlers::revoke_key);
    let v1_create = warp::path!("v1" / "videos")
        .and(warp::post())
        .and(v1_key())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .and(state.clone())
        .and_then(openai::create);
    let v1_list = warp::path!("v1" / "videos")
        .and(warp::get())
        .and(v1_key())
        .and(warp::query())
        .and(state.clone())
        .and_then(openai::list);
    let v1_get = warp::path!("v1" / "videos" / String)
        .and(warp::get())
        .and(v1_key())
        .and(state.clone())
        .and_then(openai::retrieve);
    let v1_delete = warp::path!("v1" / "videos" / String)
        .and(warp::delete())
        .and(v1_key())
        .and(state.clone())
        .and_then(openai::delete);
    let v1_content = warp::path!("v1" / "videos" / String / "content")
        .and(warp::get())
        .and(v1_key())
        .and(warp::query())
        .and(state.clone())
        .and_then(openai::content);
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and_then(handlers::healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(state.clone())
        .and_then(handlers::readyz);
    let host_stats = warp::path!("api" / "stats")
        .and(warp::get())
        .and(admin())
        .and(state.clone())
        .and(probe.clone())
        .and_then(stats::stats);
    let spec = warp::path!("openapi.json")
        .and(warp::get())
        .and(state.clone())
        .map(|st: AppState| warp::reply::json(&openapi::spec(st.backend.model())).into_response());
    // The web page: public, read leniently (no request to it is refused).
    let page_asset = |asset: &'static page::Asset| {
        warp::get()
            .and(warp::header::headers_cloned())
            .map(move |h: warp::http::HeaderMap| page::serve(asset, &h))
    };
    let index = warp::path::end().and(page_asset(&page::INDEX));
    let css = warp::path!("page.css").and(page_asset(&page::CSS));
    let js = warp::path!("page.js").and(page_asset(&page::JS));

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
        v1_create.boxed(),
        v1_list.boxed(),
        v1_get.boxed(),
        v1_delete.boxed(),
        v1_content.boxed(),
        create_key.boxed(),
        list_keys.boxed(),
        revoke_key.boxed(),
        readyz.boxed(),
        spec.boxed(),
        host_stats.boxed(),
        index.boxed(),
        css.boxed(),
        js.boxed(),
    ];
    if let Some(prometheus) = config.prometheus {
        let scraper = Arc::new(Scraper {
            prometheus,
            tasks: st.tasks.clone(),
            backend: st.backend.clone(),
            probe: Arc::new(Probe::new(config.data_dir.clone())),
        });
        let scrape = warp::path!("metrics")
            .and(warp::get())
            .and(admin())
            .and_then(move |_: Caller| metrics::scrape(scraper.clone()));
        rest.push(scrape.boxed());
    }
    let tree = rest
        .into_iter()
        .fold(healthz.boxed(), |acc, f| acc.or(f).unify().boxed());
    let tree = if config.cors_origins.is_empty() {
        tree
    } else {
        let cors = warp::cors()
            .allow_origins(config.cors_origins.iter().map(String::as_str))
            .allow_headers(["authorization", "content-type", "range"])
            .allow_methods(["GET", "POST", "DELETE"]);
        tree.with(cors).map(Reply::into_response).boxed()
    };
    let tree = warp::path::full()
        .and(tree.recover(errors::recover).unify())
        .map(errors::allow_on_405);
    metrics::instrument(tree)
        .with(warp::trace::request())
        .map(Reply::into_response)
        .boxed()
}

/// `GET /metrics` alone and unauthenticated, for a listener of its own (`--metrics-addr`,
/// which should be one only the scraper reaches).
pub fn metrics_only(
    tasks: Arc<TaskService>,
    backend: Arc<dyn Backend>,
    data_dir: PathBuf,
    prometheus: PrometheusHandle,
) -> BoxedFilter<(Response,)> {
    let scraper = Arc::new(Scraper {
        prometheus,
        tasks,
        backend,
        probe: Arc::new(Probe::new(data_dir)),
    });
    warp::path!("metrics")
        .and(warp::get())
        .and_then(move || metrics::scrape(scraper.clone()))
        .recover(errors::recover)
        .unify()
        .boxed()
}
