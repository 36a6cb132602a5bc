//! The routes: which path and method reach which handler. Paths are matched before methods so
//! that a known path with the wrong method is a 405 and an unknown path a 404.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use storage::Store;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::backend::Backend;
use crate::handlers::{self, AppState};
use crate::models::MAX_BODY_BYTES;
use crate::{errors, media, openapi, sse, stream};

/// The whole API. `data_dir` is where artifacts' relative paths point.
pub fn routes(
    store: Arc<Store>,
    backend: Arc<dyn Backend>,
    data_dir: PathBuf,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
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
        .and(state)
        .and_then(handlers::readyz);
    let spec = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| warp::reply::json(&openapi::spec()).into_response());

    // Boxed: keeps the combined type (and compile times) small.
    let rest: [BoxedFilter<(Response,)>; 10] = [
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
    ];
    rest.into_iter()
        .fold(healthz.boxed(), |acc, f| acc.or(f).unify().boxed())
        .recover(errors::recover)
        .unify()
        .with(warp::trace::request())
}
