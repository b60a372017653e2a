//! The engine's containers and its answers, in the shape of Docker's own
//! API: only the calls a worker makes for a queued job (create, attach,
//! start, wait, inspect, kill, remove, rename, list, image inspect), and
//! around them (networks, volumes and archives: [`crate::store`]).
//! A container runs no process: its command line is read as a [`Script`]
//! and "run" by a task that writes its lines and ends with its code.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    extract::{Query, Request, State},
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, watch},
};

use crate::answer::error;
use crate::script::{self, Script, Step};
use crate::store;

/// The largest request body read (a container's create body).
const BODY_LIMIT: usize = 16 << 20;

#[derive(Default)]
pub struct Engine {
    containers: Mutex<HashMap<String, Container>>,
    things: store::Things,
}

struct Container {
    name: String,
    labels: Value,
    image: String,
    script: Script,
    started: bool,
    /// The output frames, until an attach takes the receiver.
    output: Option<mpsc::UnboundedSender<Bytes>>,
    attach: Option<mpsc::UnboundedReceiver<Bytes>>,
    /// The exit code, once ended.
    exit: watch::Sender<Option<i64>>,
    run: Option<tokio::task::JoinHandle<()>>,
}

type Shared = Arc<Engine>;

/// Every request, routed by hand: Docker's paths may carry a `/v1.NN`
/// prefix, and image names may contain `/`.
pub async fn handle(State(engine): State<Shared>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let uri = request.uri().clone();
    let path = uri.path().trim_start_matches('/').to_owned();
    let mut segments: Vec<&str> = path.split('/').collect();
    if segments.first().is_some_and(|first| {
        first.starts_with('v') && first[1..].starts_with(|c: char| c.is_ascii_digit())
    }) {
        segments.remove(0);
    }
    match (method.as_str(), segments.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => "OK".into_response(),
        ("GET", ["version"]) => axum::Json(json!({
            "ApiVersion": "1.43", "MinAPIVersion": "1.24", "Version": "stub", "Os": "linux", "Arch": "amd64"
        }))
        .into_response(),
        ("GET", ["info"]) => axum::Json(json!({ "Name": "jobs-stub-engine" })).into_response(),
        ("GET", ["images", "json"]) => axum::Json(json!([])).into_response(),
        ("GET", ["images", name @ .., "json"]) => image(&name.join("/")),
        ("POST", ["containers", "create"]) => create(&engine, &uri, request).await,
        ("GET", ["containers", "json"]) => list(&engine, &uri),
        ("POST", ["containers", id, "attach"]) => attach(&engine, id, request),
        ("POST", ["containers", id, "start"]) => start(&engine, id),
        ("POST", ["containers", id, "wait"]) => wait(&engine, id).await,
        ("GET", ["containers", id, "json"]) => inspect(&engine, id),
        ("POST", ["containers", id, "kill"]) => kill(&engine, id, &uri),
        ("POST", ["containers", id, "rename"]) => rename(&engine, id, &uri),
        ("DELETE", ["containers", id]) => remove(&engine, id),
        ("PUT", ["containers", _, "archive"]) => {
            let dir = query(&uri).remove("path").unwrap_or_default();
            match axum::body::to_bytes(request.into_body(), BODY_LIMIT).await {
                Ok(body) => store::put_archive(&engine.things, &dir, &body),
                Err(error_) => error(StatusCode::BAD_REQUEST, error_.to_string()),
            }
        }
        ("GET", ["containers", _, "archive"]) => {
            store::get_archive(&engine.things, &query(&uri).remove("path").unwrap_or_default())
        }
        ("POST", [kind @ ("networks" | "volumes"), "create"]) => {
            match axum::body::to_bytes(request.into_body(), BODY_LIMIT).await {
                Ok(body) => store::create(
                    &engine.things,
                    kind,
                    &serde_json::from_slice(&body).unwrap_or(Value::Null),
                ),
                Err(error_) => error(StatusCode::BAD_REQUEST, error_.to_string()),
            }
        }
        ("GET", [kind @ ("networks" | "volumes")]) => store::list(&engine.things, kind),
        ("GET", [kind @ ("networks" | "volumes"), name]) => {
            store::inspect(&engine.things, kind, name)
        }
        ("DELETE", [kind @ ("networks" | "volumes"), name]) => {
            store::remove(&engine.things, kind, name)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("the stub engine does not simulate {method} /{path}"),
        ),
    }
}

fn query(uri: &Uri) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(query)| query)
        .unwrap_or_default()
}

/// Every image exists, with `sh` as its command.
fn image(name: &str) -> Response {
    let digits: String = format!(
        "{:x}",
        name.len() * 7919 + name.bytes().map(usize::from).sum::<usize>()
    )
    .chars()
    .cycle()
    .take(64)
    .collect();
    axum::Json(json!({
        "Id": format!("sha256:{digits}"),
        "RepoTags": [name],
        "Config": { "Cmd": ["sh"], "Entrypoint": null, "Env": [], "Labels": {} },
    }))
    .into_response()
}

/// The id of the container named or identified by `key`.
fn find(containers: &HashMap<String, Container>, key: &str) -> Option<String> {
    let key = key.trim_start_matches('/');
    if containers.contains_key(key) {
        return Some(key.to_owned());
    }
    containers
        .iter()
        .find(|(id, container)| container.name == key || id.starts_with(key))
        .map(|(id, _)| id.clone())
}

async fn create(engine: &Shared, uri: &Uri, request: Request) -> Response {
    let body = match axum::body::to_bytes(request.into_body(), BODY_LIMIT).await {
        Ok(body) => body,
        Err(error_) => return error(StatusCode::BAD_REQUEST, error_.to_string()),
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let words = |key: &str| -> Vec<String> {
        body[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut line = words("Entrypoint");
    line.extend(words("Cmd"));
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let id = format!("{unique}{unique}");
    let name = query(uri)
        .remove("name")
        .unwrap_or_else(|| id[..12].to_owned());
    let (output, attach) = mpsc::unbounded_channel();
    let container = Container {
        name,
        labels: body["Labels"].clone(),
        image: body["Image"].as_str().unwrap_or_default().to_owned(),
        script: script::parse(&line),
        started: false,
        output: Some(output),
        attach: Some(attach),
        exit: watch::Sender::new(None),
        run: None,
    };
    let mut containers = engine.containers.lock().expect("the engine's lock");
    if containers
        .values()
        .any(|other| other.name == container.name)
    {
        return error(
            StatusCode::CONFLICT,
            format!("the name {} is in use", container.name),
        );
    }
    containers.insert(id.clone(), container);
    (
        StatusCode::CREATED,
        axum::Json(json!({ "Id": id, "Warnings": [] })),
    )
        .into_response()
}

/// `GET /containers/json`, with `label` filters (`key=value` or `key`).
fn list(engine: &Shared, uri: &Uri) -> Response {
    let filters: Value = query(uri)
        .get("filters")
        .and_then(|filters| serde_json::from_str(filters).ok())
        .unwrap_or(Value::Null);
    let wanted: Vec<String> = filters["label"]
        .as_array()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|label| label.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let containers = engine.containers.lock().expect("the engine's lock");
    let listed: Vec<Value> = containers
        .iter()
        .filter(|(_, container)| {
            wanted.iter().all(|label| match label.split_once('=') {
                Some((key, value)) => container.labels[key].as_str() == Some(value),
                None => !container.labels[label.as_str()].is_null(),
            })
        })
        .map(|(id, container)| {
            json!({
                "Id": id,
                "Names": [format!("/{}", container.name)],
                "Image": container.image,
                "Labels": container.labels,
                "State": state_name(container),
            })
        })
        .collect();
    axum::Json(Value::Array(listed)).into_response()
}

fn state_name(container: &Container) -> &'static str {
    match (container.started, container.exit.borrow().is_some()) {
        (_, true) => "exited",
        (true, false) => "running",
        (false, false) => "created",
    }
}

/// The hijacked connection of an attach: Docker's multiplexed frames of
/// the container's output, until it ends.
fn attach(engine: &Shared, key: &str, mut request: Request) -> Response {
    let frames = {
        let mut containers = engine.containers.lock().expect("the engine's lock");
        let Some(id) = find(&containers, key) else {
            return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
        };
        containers
            .get_mut(&id)
            .and_then(|container| container.attach.take())
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        if let Some(mut frames) = frames {
            while let Some(frame) = frames.recv().await {
                if io.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
        let _ = io.shutdown().await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(Body::empty())
        .expect("a valid response")
}

/// A stdout frame of Docker's multiplexed stream.
fn stdout_frame(line: &str) -> Bytes {
    let payload = format!("{line}\n");
    let mut frame = vec![1, 0, 0, 0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload.as_bytes());
    Bytes::from(frame)
}

fn start(engine: &Shared, key: &str) -> Response {
    let mut containers = engine.containers.lock().expect("the engine's lock");
    let Some(id) = find(&containers, key) else {
        return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
    };
    let container = containers.get_mut(&id).expect("found");
    if container.started {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    container.started = true;
    let script = container.script.clone();
    let output = container.output.take();
    let exit = container.exit.clone();
    container.run = Some(tokio::spawn(async move {
        for step in script.steps {
            match step {
                Step::Echo(line) => {
                    if let Some(output) = &output {
                        let _ = output.send(stdout_frame(&line));
                    }
                }
                Step::Sleep(duration) => tokio::time::sleep(duration).await,
            }
        }
        drop(output);
        exit.send_replace(Some(script.exit_code));
    }));
    StatusCode::NO_CONTENT.into_response()
}

async fn wait(engine: &Shared, key: &str) -> Response {
    let mut exit = {
        let containers = engine.containers.lock().expect("the engine's lock");
        let Some(id) = find(&containers, key) else {
            return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
        };
        containers[&id].exit.subscribe()
    };
    let code = match exit.wait_for(Option::is_some).await {
        Ok(code) => code.unwrap_or(-1),
        // Removed while waited for.
        Err(_) => return error(StatusCode::NOT_FOUND, format!("No such container: {key}")),
    };
    axum::Json(json!({ "StatusCode": code, "Error": null })).into_response()
}

fn inspect(engine: &Shared, key: &str) -> Response {
    let containers = engine.containers.lock().expect("the engine's lock");
    let Some(id) = find(&containers, key) else {
        return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
    };
    let container = &containers[&id];
    let exit_code = *container.exit.borrow();
    axum::Json(json!({
        "Id": id,
        "Name": format!("/{}", container.name),
        "Image": "sha256:stub",
        "State": {
            "Status": state_name(container),
            "Running": state_name(container) == "running",
            "ExitCode": exit_code.unwrap_or(0),
            "OOMKilled": false,
        },
        "Config": { "Image": container.image, "Labels": container.labels },
    }))
    .into_response()
}

/// Ends a running container as the signal would: 128 + its number.
fn kill(engine: &Shared, key: &str, uri: &Uri) -> Response {
    let signal = query(uri)
        .remove("signal")
        .unwrap_or_else(|| "SIGKILL".into());
    let number = match signal.trim_start_matches("SIG") {
        "TERM" | "15" => 15,
        "INT" | "2" => 2,
        "USR2" | "12" => 9,
        _ => 9,
    };
    let mut containers = engine.containers.lock().expect("the engine's lock");
    let Some(id) = find(&containers, key) else {
        return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
    };
    let container = containers.get_mut(&id).expect("found");
    if state_name(container) != "running" {
        return error(
            StatusCode::CONFLICT,
            format!("Container {id} is not running"),
        );
    }
    if let Some(run) = container.run.take() {
        run.abort();
    }
    container.exit.send_replace(Some(128 + number));
    StatusCode::NO_CONTENT.into_response()
}

fn rename(engine: &Shared, key: &str, uri: &Uri) -> Response {
    let Some(name) = query(uri).remove("name") else {
        return error(StatusCode::BAD_REQUEST, "no name");
    };
    let mut containers = engine.containers.lock().expect("the engine's lock");
    let Some(id) = find(&containers, key) else {
        return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
    };
    containers.get_mut(&id).expect("found").name = name;
    StatusCode::NO_CONTENT.into_response()
}

fn remove(engine: &Shared, key: &str) -> Response {
    let mut containers = engine.containers.lock().expect("the engine's lock");
    let Some(id) = find(&containers, key) else {
        return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
    };
    if let Some(container) = containers.remove(&id)
        && let Some(run) = container.run
    {
        run.abort();
    }
    StatusCode::NO_CONTENT.into_response()
}
