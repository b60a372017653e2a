//! `GET /v1/openapi.json` on the running API: the OpenAPI document, served
//! without a token (it describes the API and reveals no data), naming the
//! routes the other tests call. Its content is checked route by route in
//! crates/api/tests/openapi.rs.

use jobs_e2e::{TestEnv, http};

#[test]
fn the_openapi_document_is_served_without_a_token() {
    let mut env = TestEnv::start(1);
    let response = http::request(env.api_url(), "GET", "/v1/openapi.json", None, None);
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.content_type.as_deref().unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type:?}"
    );
    let document = response.json();
    let version = document["openapi"].as_str().unwrap_or("");
    assert!(version.starts_with("3."), "{version:?}");
    for path in ["/v1/apps", "/v1/jobs/{id}/logs/stream", "/v1/tokens/{id}"] {
        assert!(document["paths"][path].is_object(), "{path} is missing");
    }
    // A route under /v1 still needs the token.
    let refused = http::request(env.api_url(), "GET", "/v1/apps", None, None);
    assert_eq!(refused.status, 401, "{refused:?}");
    env.finish();
}
