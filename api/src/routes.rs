//! The one route table: every path and method the API serves, who may call it, and what it
//! does. Routing is checked against it (the tests call every entry and expect each to be
//! served), the metrics label each request by its entry ([`template_of`]), and the OpenAPI
//! document is generated from it ([`crate::openapi`]).

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, readiness, the document, the web page).
    Public,
    /// Any valid API key (or anyone while the server runs open, with no keys).
    Key,
    /// An admin key (or anyone while the server runs open).
    Admin,
}

/// One operation: a method on a path template.
#[derive(Debug)]
pub struct Route {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The template, as OpenAPI spells it (`/api/tasks/{id}`); `{..}` segments are parameters.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the document.
    pub summary: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        access,
        summary,
    }
}

/// Every route, in the order the document lists them.
pub const ROUTES: &[Route] = &[
    route("POST", "/api/tasks", Access::Key, "Submit a prompt; the video is generated in the background"),
    route("GET", "/api/tasks", Access::Key, "List your tasks (an admin key: every task), newest first"),
    route("GET", "/api/tasks/{id}", Access::Key, "One task: status, plan, progress, timings, links"),
    route("DELETE", "/api/tasks/{id}", Access::Key, "Cancel a queued or running task (a finished one is returned unchanged)"),
    route("GET", "/api/tasks/{id}/events", Access::Key, "Server-sent events: status, progress, frame, done (then the stream ends)"),
    route("GET", "/api/tasks/{id}/stream", Access::Key, "The frames as they are made (multipart PNG, shown live by an <img>); a finished task's frames replayed"),
    route("GET", "/api/tasks/{id}/video", Access::Key, "The finished MP4 (H.264)"),
    route("GET", "/api/tasks/{id}/frames/{n}", Access::Key, "Frame n as PNG, once stored"),
    route("POST", "/v1/videos", Access::Key, "OpenAI-style: make a video (multipart or JSON: prompt, model, seconds, size)"),
    route("GET", "/v1/videos", Access::Key, "OpenAI-style: list your videos, newest first"),
    route("GET", "/v1/videos/{video_id}", Access::Key, "OpenAI-style: one video job"),
    route("DELETE", "/v1/videos/{video_id}", Access::Key, "OpenAI-style: cancel a video if it runs, then delete it"),
    route("GET", "/v1/videos/{video_id}/content", Access::Key, "OpenAI-style: the video's MP4"),
    route("POST", "/api/keys", Access::Admin, "Make an API key; its token is in this answer only"),
    route("GET", "/api/keys", Access::Admin, "List API keys (never their tokens)"),
    route("DELETE", "/api/keys/{key}", Access::Admin, "Revoke an API key, at once"),
    route("GET", "/api/stats", Access::Admin, "CPU, memory, disk, network, GPU, queue and live tasks at a glance"),
    route("GET", "/metrics", Access::Admin, "Prometheus metrics (also on --metrics-addr, unauthenticated, when set)"),
    route("GET", "/healthz", Access::Public, "The process answers"),
    route("GET", "/readyz", Access::Public, "Ready to take tasks: storage answers, the engine runs, disk space is above its floor"),
    route("GET", "/openapi.json", Access::Public, "This document"),
    route("GET", "/", Access::Public, "The web page: submit a prompt, watch the video form, play and manage tasks (its API calls send the key typed into it)"),
    route("GET", "/page.css", Access::Public, "The web page's stylesheet"),
    route("GET", "/page.js", Access::Public, "The web page's script"),
];

fn matches(template: &str, path: &str) -> bool {
    let mut t = template.split('/').filter(|s| !s.is_empty());
    let mut p = path.split('/').filter(|s| !s.is_empty());
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') => {
                // Key and video ids are any segment (as their routes take them); the rest are
                // numbers.
                let ok = matches!(ts, "{key}" | "{video_id}") || ps.parse::<u64>().is_ok();
                if !ok {
                    return false;
                }
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// The template a path is served by, or `"unmatched"`: a bounded label for any path.
pub fn template_of(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| matches(r.path, path))
        .map_or("unmatched", |r| r.path)
}

/// The methods served on the template of `path`, for a 405's `Allow` header (RFC 9110).
pub fn methods_of(path: &str) -> Vec<&'static str> {
    let template = template_of(path);
    ROUTES
        .iter()
        .filter(|r| r.path == template)
        .map(|r| r.method)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_templates() {
        assert_eq!(template_of("/api/tasks"), "/api/tasks");
        assert_eq!(template_of("/api/tasks/12"), "/api/tasks/{id}");
        assert_eq!(
            template_of("/api/tasks/12/frames/3"),
            "/api/tasks/{id}/frames/{n}"
        );
        assert_eq!(template_of("/api/keys/key_0a1b"), "/api/keys/{key}");
        assert_eq!(
            template_of("/v1/videos/video_3/content"),
            "/v1/videos/{video_id}/content"
        );
        assert_eq!(template_of("/api/tasks/abc"), "unmatched");
        assert_eq!(template_of("/api/tasks/1/frames/x"), "unmatched");
        assert_eq!(template_of("/nope"), "unmatched");
        assert_eq!(template_of("/"), "/");
        assert_eq!(template_of("/page.js"), "/page.js");
        assert_eq!(template_of("/page.js/x"), "unmatched");
        assert_eq!(methods_of("/api/tasks/3"), ["GET", "DELETE"]);
        assert!(methods_of("/nope").is_empty());
    }

    #[test]
    fn every_entry_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!((a.method, a.path) != (b.method, b.path), "{a:?} twice");
            }
        }
    }
}
