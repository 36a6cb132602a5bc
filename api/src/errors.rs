//! The API's one error shape, `{"code": "...", "message": "..."}`, and the one `recover` that
//! turns every rejection into it: ours ([`ApiError`]) and warp's own (unknown route, wrong
//! method, body too large, wrong content type, undecodable JSON or query).

use std::convert::Infallible;

use serde::Serialize;
use warp::filters::body::BodyDeserializeError;
use warp::http::header::{HeaderValue, RETRY_AFTER};
use warp::http::StatusCode;
use warp::reject::{
    InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader, PayloadTooLarge,
    UnsupportedMediaType,
};
use warp::reply::Response;
use warp::{Rejection, Reply};

/// An error answer: HTTP status, a stable machine-readable code, a human message. Messages
/// never carry file paths or debug text: a failure of ours is logged in full and answered
/// with a generic message ([`ApiError::internal`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable and machine-readable: `invalid_field`, `task_not_found`, `quota_exceeded`...
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404 for a task that does not exist or is not the caller's (the same answer, so a
    /// key cannot probe for other keys' tasks).
    pub fn task_not_found(id: u64) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "task_not_found",
            format!("no task {id}"),
        )
    }

    /// A 429: the server's queue is full.
    pub fn queue_full(depth: usize, retry_after: u64) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!("{depth} tasks are waiting; try again later"),
        )
        .retry_after(retry_after)
    }

    /// A 503: the engine or the disk cannot take work now.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(retry_after)
    }

    /// This error with a `Retry-After` header.
    pub fn retry_after(self, secs: u64) -> Self {
        ApiError {
            retry_after: Some(secs),
            ..self
        }
    }

    /// A failure of ours, not the client's: logged in full, answered with a 500 whose message
    /// says nothing of the inside (no paths, no debug text).
    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server has logged it",
        )
    }
}

impl From<storage::StoreError> for ApiError {
    fn from(e: storage::StoreError) -> Self {
        if e.is_disk_full() {
            tracing::error!(error = %e, "storage is out of space");
            return ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "the server's disk is full; try again later",
            );
        }
        ApiError::internal(format_args!("storage: {e}"))
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
        };
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Adds the `Allow` header a 405 must carry (RFC 9110): the methods the route table serves
/// on the request's path.
pub fn allow_on_405(path: warp::path::FullPath, mut res: Response) -> Response {
    if res.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = crate::routes::methods_of(path.as_str()).join(", ");
        if let Ok(v) = HeaderValue::from_str(&allow) {
            res.headers_mut().insert(warp::http::header::ALLOW, v);
        }
    }
    res
}

/// Maps any rejection to a JSON error. The order matters where warp combines rejections from
/// several routes: a body or query error of the route that matched the path and method wins
/// over "wrong method" from its siblings on the same path, which wins over "no such route".
pub async fn recover(err: Rejection) -> Result<Response, Infallible> {
    if let Some(e) = err.find::<crate::openai::OpenAiError>() {
        return Ok(e.response());
    }
    let e = if let Some(e) = err.find::<ApiError>() {
        e.clone()
    } else if let Some(e) = err.find::<BodyDeserializeError>() {
        // The serde message names the field and position ("unknown field `x`", "invalid type").
        let cause = std::error::Error::source(e).map_or_else(|| e.to_string(), |c| c.to_string());
        ApiError::bad_request("invalid_json", cause)
    } else if err.find::<PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body over {} bytes", crate::models::MAX_BODY_BYTES),
        )
    } else if err.find::<UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        )
    } else if err.find::<LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a content-length header is required",
        )
    } else if let Some(e) = err.find::<InvalidQuery>() {
        ApiError::bad_request("invalid_query", e.to_string())
    } else if let Some(e) = err.find::<InvalidHeader>() {
        ApiError::bad_request("invalid_header", e.to_string())
    } else if let Some(e) = err.find::<MissingHeader>() {
        ApiError::bad_request("missing_header", e.to_string())
    } else if let Some(e) = err.find::<warp::filters::cors::CorsForbidden>() {
        ApiError::new(StatusCode::FORBIDDEN, "cors_forbidden", e.to_string())
    } else if err.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    } else if err.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
    } else {
        // What is left (an unreadable body, say) came from the request, not from us; its
        // debug text stays in the log.
        tracing::warn!(rejection = ?err, "unmapped rejection");
        ApiError::bad_request("bad_request", "the request could not be read")
    };
    Ok(e.into_response())
}
