//! The web page at `/`: plain HTML, CSS and JavaScript (`api/src/page/`), embedded in the
//! binary so that nothing is fetched from anywhere else. The page calls the same `/api`
//! routes as any client, with the API key the user typed (kept in the browser) when the
//! server has keys; serving the page itself needs none.
//!
//! Every answer carries an `ETag` (a hash of the embedded bytes, fixed at build time) and
//! `Cache-Control: no-cache`, so a browser revalidates and gets a 304 until the binary changes.
//! The HTML carries a strict `Content-Security-Policy`: scripts, styles and connections from
//! this origin only, images also from `data:` (live previews) and `blob:`, media from `blob:`
//! (a video fetched with a key), no frames, no plugins, no form targets elsewhere.

use warp::http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

/// The policy the HTML is served with.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Its quoted `ETag`, fixed at build time.
    etag: &'static str,
}

/// 64-bit FNV-1a, at compile time: the assets' ETags.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// `"` + 16 hex digits + `"`.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($file:literal, $type:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("page/", $file));
        const TAG: [u8; 18] = etag_of(BODY);
        Asset {
            content_type: $type,
            body: BODY,
            // Hex digits and quotes only: always UTF-8.
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

/// `GET /`.
pub static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
/// `GET /page.css`.
pub static CSS: Asset = asset!("page.css", "text/css; charset=utf-8");
/// `GET /page.js`.
pub static JS: Asset = asset!("page.js", "text/javascript; charset=utf-8");

/// Whether an `If-None-Match` header names `etag` (or is `*`).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The answer for `asset`: 200 with the body, or 304 when the browser's copy is current.
/// Headers the request cannot spoil are read leniently, so no request is refused here.
pub fn serve(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let fresh = matches(headers, asset.etag);
    let mut res = if fresh {
        let mut r = Response::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(asset.body.into())
    };
    let h = res.headers_mut();
    h.insert(ETAG, HeaderValue::from_static(asset.etag));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !fresh {
        h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    }
    if asset.content_type.starts_with("text/html") {
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hashes_and_differ() {
        for a in [&INDEX, &CSS, &JS] {
            assert_eq!(a.etag.len(), 18);
            assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
        }
        assert_ne!(INDEX.etag, CSS.etag);
        assert_ne!(CSS.etag, JS.etag);
    }

    #[test]
    fn if_none_match_is_read_as_a_list() {
        let mut h = HeaderMap::new();
        assert!(!matches(&h, CSS.etag));
        h.insert(
            IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/{}", CSS.etag)).unwrap(),
        );
        assert!(matches(&h, CSS.etag));
        assert!(!matches(&h, JS.etag));
        assert_eq!(serve(&CSS, &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve(&JS, &h).status(), StatusCode::OK);
    }
}
