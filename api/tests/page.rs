//! The web page at `/`: served from the binary with its types, a strict CSP, revalidation by
//! ETag, and no key needed even when the server has keys. (scripts/page_test.sh drives it in
//! a real browser against the real binary.)

mod common;

use common::start;

/// `/` is the page, as HTML with the CSP; its stylesheet and script are what it links.
#[tokio::test]
async fn the_page_and_its_assets_are_served_with_their_types() {
    let rig = start().await;
    let res = rig.get("/").await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert_eq!(csp, api::page::CSP);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(r#"<meta charset="utf-8">"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/page.css">"#));
    assert!(html.contains(r#"<script src="/page.js" defer></script>"#));
    // Nothing from elsewhere: no absolute URL but the SVG namespace of the inline icon.
    for line in html.lines() {
        assert!(
            !line.contains("http") || line.contains("http://www.w3.org/2000/svg"),
            "{line}"
        );
    }
    // No inline script or style (the CSP would block them).
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains("style="));

    for (path, ty, needle) in [
        ("/page.css", "text/css; charset=utf-8", ":root"),
        ("/page.js", "text/javascript; charset=utf-8", "/api/tasks"),
    ] {
        let res = rig.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], ty, "{path}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(res.headers().get("etag").is_some(), "{path}");
        assert!(res.text().await.unwrap().contains(needle), "{path}");
    }
}

/// A browser holding the current copy gets a 304 without a body; a stale one the file.
#[tokio::test]
async fn assets_revalidate_by_etag() {
    let rig = start().await;
    for path in ["/", "/page.css", "/page.js"] {
        let first = rig.get(path).await;
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let again = rig
            .http
            .get(rig.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let stale = rig
            .http
            .get(rig.url(path))
            .header("if-none-match", "\"0000000000000000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200, "{path}");
    }
}

/// The page needs no key once keys exist (its API calls do), nor does the document its form
/// is built from (read before any key is typed), and other methods are a 405 naming GET.
#[tokio::test]
async fn the_page_is_public_and_only_read() {
    let rig = start().await;
    rig.create_key(None, "root", true).await;
    assert_eq!(rig.get("/").await.status(), 200);
    assert_eq!(rig.get("/page.js").await.status(), 200);
    assert_eq!(rig.get("/openapi.json").await.status(), 200);
    assert_eq!(rig.get("/api/tasks").await.status(), 401);
    let res = rig.http.post(rig.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET");
}
