//! The OpenAPI document (`GET /v1/openapi.json`) against the route table of
//! `jobs_core::wire`'s module doc and the router's own source: every route
//! is in it, with its method, its path parameters, its answers and, under
//! `/v1`, the bearer scheme.

use serde_json::Value;

const WIRE: &str = include_str!("../../core/src/wire.rs");
const ROUTER: &str = include_str!("../src/routes/mod.rs");

fn document() -> Value {
    serde_json::from_str(jobs_api::openapi::document()).expect("the document is JSON")
}

/// Every `METHOD /path` of the route table, the query string left off.
fn documented_routes() -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for line in WIRE.lines().filter(|line| line.starts_with("//! | `")) {
        let cell = line
            .trim_start_matches("//! | ")
            .split(" |")
            .next()
            .unwrap_or("");
        for entry in cell.split(", ") {
            let entry = entry.trim_matches('`');
            let entry = entry.split('?').next().unwrap_or(entry);
            if let Some((method, path)) = entry.split_once(' ')
                && path.starts_with('/')
            {
                routes.push((method.to_owned(), path.to_owned()));
            }
        }
    }
    routes
}

/// Every `METHOD /path` that `router_with` registers, read from its source:
/// each `.route(PATH, get(..).post(..))`, with `/v1` before the routes of
/// the `v1` router (those before the outer `Router::new()`, on either side
/// of its token layer).
fn router_routes() -> Vec<(String, String)> {
    let body = ROUTER
        .split("pub fn router_with")
        .nth(1)
        .expect("router_with is in routes/mod.rs");
    let (v1, outer) = body
        .split_once("\n    Router::new()")
        .expect("the outer router follows the v1 router");
    let mut routes = Vec::new();
    for (prefix, part) in [("/v1", v1), ("", outer)] {
        for call in part.split(".route(").skip(1) {
            let call = call.split(".nest(").next().unwrap_or(call);
            let path = if let Some(rest) = call.trim_start().strip_prefix('"') {
                rest.split('"').next().expect("a closing quote").to_owned()
            } else if call.trim_start().starts_with("openapi::OPENAPI_PATH") {
                jobs_api::openapi::OPENAPI_PATH.to_owned()
            } else {
                panic!("a route path this test cannot read: {call}");
            };
            let mut methods = 0;
            for method in ["get", "post", "put", "patch", "delete"] {
                let found = call.match_indices(&format!("{method}(")).any(|(at, _)| {
                    at == 0
                        || !call.as_bytes()[at - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[at - 1] != b'_'
                });
                if found {
                    routes.push((method.to_uppercase(), format!("{prefix}{path}")));
                    methods += 1;
                }
            }
            assert!(methods > 0, "a route without a method: {call}");
        }
    }
    routes
}

#[track_caller]
fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &document["paths"][path][method.to_lowercase()];
    assert!(
        operation.is_object(),
        "{method} {path} is not in the OpenAPI document"
    );
    operation
}

#[test]
fn the_document_is_openapi_3() {
    let document = document();
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(document["info"]["title"].is_string());
}

#[test]
fn every_route_of_the_route_table_is_in_the_document() {
    let documented = documented_routes();
    assert!(documented.len() >= 18, "the table parsed: {documented:?}");
    let document = document();
    for (method, path) in &documented {
        operation(&document, method, path);
    }
}

#[test]
fn every_route_of_the_router_is_in_the_route_table_and_the_document() {
    let mut routed = router_routes();
    let mut documented = documented_routes();
    routed.sort();
    documented.sort();
    assert_eq!(routed, documented, "the router and wire.rs's table differ");
    let document = document();
    let mut in_document = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            in_document.push((method.to_uppercase(), path.clone()));
        }
    }
    in_document.sort();
    assert_eq!(
        in_document, routed,
        "the document has a route the router lacks"
    );
}

#[test]
fn every_path_parameter_is_declared() {
    let document = document();
    for (path, item) in document["paths"].as_object().expect("paths") {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, operation) in item.as_object().expect("a path item") {
            for name in &names {
                let declared = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|parameter| {
                        parameter["in"] == "path"
                            && parameter["name"] == *name
                            && parameter["required"] == true
                    });
                assert!(declared, "{method} {path} does not declare {{{name}}}");
            }
        }
    }
}

#[test]
fn the_bearer_scheme_guards_every_v1_route_but_the_document() {
    let document = document();
    let scheme = &document["components"]["securitySchemes"][jobs_api::openapi::BEARER_SCHEME];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for (method, path) in documented_routes() {
        let operation = operation(&document, &method, &path);
        let secured = operation["security"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|requirement| requirement.get(jobs_api::openapi::BEARER_SCHEME).is_some());
        let public = !path.starts_with("/v1/") || path == jobs_api::openapi::OPENAPI_PATH;
        assert_eq!(secured, !public, "{method} {path}: security {secured}");
        if !public {
            for status in ["401", "403", "429", "500"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
        }
    }
}

#[test]
fn errors_are_api_error_bodies_and_bodies_have_schemas() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    let error = &schemas["ApiError"];
    assert_eq!(
        error["properties"]["error"]["$ref"], "#/components/schemas/ApiErrorBody",
        "{error}"
    );
    let code = schemas["ApiErrorBody"]["properties"]["code"]["description"]
        .as_str()
        .expect("the code is described");
    for name in [
        "invalid_input",
        "not_found",
        "rate_limited",
        "too_many_jobs",
    ] {
        assert!(code.contains(name), "{code}");
    }
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let responses = operation["responses"].as_object().expect("responses");
            // A WebSocket route succeeds with 101 Switching Protocols.
            assert!(
                responses
                    .keys()
                    .any(|status| status.starts_with('2') || status == "101"),
                "{method} {path} has no success answer"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ApiError",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // Request bodies name their wire type.
    for (method, path, schema) in [
        ("post", "/v1/apps", "AppCreate"),
        ("patch", "/v1/apps/{app}", "AppUpdate"),
        ("post", "/v1/apps/{app}/jobs", "JobCreate"),
        ("post", "/v1/tokens", "TokenCreate"),
    ] {
        let body = &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"];
        assert_eq!(
            body,
            &format!("#/components/schemas/{schema}"),
            "{method} {path}"
        );
        assert!(schemas[schema].is_object(), "{schema} is in the components");
    }
    let stream = &document["paths"]["/v1/jobs/{id}/logs/stream"]["get"]["responses"]["200"];
    assert!(
        stream["content"]["text/event-stream"].is_object(),
        "{stream}"
    );
}
