//! The web console: the pages at `/` and their assets, all embedded in the
//! binary, so that `cargo build` is the whole build (docs/console.md).
//!
//! Every page is the same HTML shell; its scripts read the path and draw
//! the page from API answers. The pages cannot be rendered here because
//! they hold data, and data needs the bearer token, which a browser sends
//! on `fetch`, never on a navigation: there are no cookies, so nothing a
//! foreign site can make the browser send authorises anything (no CSRF).
//!
//! Every answer carries a strict Content-Security-Policy ([`CSP`]): scripts
//! only from this origin, no inline script, no `eval`, connections only to
//! this origin, no frames. The scripts put job output in the page as text
//! only, never as HTML.

mod assets;

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::error::ApiError;

/// The policy of every console answer. `style-src` allows inline styles
/// because the terminal emulator (xterm.js) writes its cell metrics into a
/// `<style>` element it creates; styles cannot run code, and no job output
/// is ever parsed as HTML or CSS.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The paths of the console's pages, each served the same shell.
pub const PAGE_PATHS: &[&str] = &[
    "/",
    "/apps",
    "/apps/{app}",
    "/apps/{app}/new",
    "/jobs/{id}",
    "/groups/{id}",
    "/workers",
];

/// Where the assets are served, `/console/NAME`.
pub const ASSET_PREFIX: &str = "/console/";

/// The console's routes: its pages and `/console/{*name}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for path in PAGE_PATHS {
        router = router.route(path, get(page));
    }
    router.route("/console/{*name}", get(asset))
}

async fn page() -> Response {
    respond(
        "text/html; charset=utf-8",
        assets::INDEX_HTML.as_bytes(),
        "no-cache",
    )
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let asset = assets::find(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no route for GET {ASSET_PREFIX}{name}")))?;
    Ok(respond(asset.content_type, asset.bytes, "no-cache"))
}

/// An answer with the security headers every console answer has.
fn respond(content_type: &'static str, body: &'static [u8], cache: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, cache),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use tower::ServiceExt;

    async fn get_path(path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = routes::<()>()
            .oneshot(
                axum::http::Request::get(path)
                    .body(Body::empty())
                    .expect("request builds"),
            )
            .await
            .expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 4 << 20).await.unwrap();
        (status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn every_page_is_the_shell_with_a_strict_policy() {
        for path in [
            "/",
            "/apps",
            "/apps/demo",
            "/apps/demo/new",
            "/jobs/abc",
            "/groups/grp_abc",
            "/workers",
        ] {
            let (status, headers, body) = get_path(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(body, assets::INDEX_HTML.as_bytes(), "{path}");
        }
        assert!(CSP.contains("script-src 'self';"));
        assert!(!CSP.contains("unsafe-eval"));
    }

    #[tokio::test]
    async fn the_shell_has_no_inline_script_and_its_assets_are_served() {
        let html = assets::INDEX_HTML;
        for tag in html.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap();
            assert!(open.contains("src=\"/console/"), "an inline script: {tag}");
        }
        for name in ["app.js", "console.css", "vendor/xterm/xterm.mjs"] {
            let (status, headers, body) = get_path(&format!("/console/{name}")).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            assert!(!body.is_empty());
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        }
        let (status, _, _) = get_path("/console/nope.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get_path("/console/../Cargo.toml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
