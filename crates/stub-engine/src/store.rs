//! What the stub keeps besides containers, for the worker's calls around
//! them: networks and volumes by name, and the files put into containers
//! through the archive API (by absolute path, for every container alike),
//! so that a worker can fill its shim's volume and read it back.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    sync::Mutex,
};

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::answer::error;

#[derive(Default)]
pub struct Things {
    networks: Mutex<BTreeSet<String>>,
    volumes: Mutex<BTreeSet<String>>,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
}

/// `POST /networks/create` and `POST /volumes/create`: 201, or 409 for a
/// network that exists (a volume's creation is idempotent, as Docker's).
pub fn create(things: &Things, kind: &str, body: &Value) -> Response {
    let name = body["Name"].as_str().unwrap_or_default().to_owned();
    let set = set_of(things, kind);
    let mut set = set.lock().expect("the stub's lock");
    if !set.insert(name.clone()) && kind == "networks" {
        return error(
            StatusCode::CONFLICT,
            format!("network with name {name} already exists"),
        );
    }
    (StatusCode::CREATED, axum::Json(described(kind, &name))).into_response()
}

/// A network or a volume as Docker describes it, with the fields its
/// clients require.
fn described(kind: &str, name: &str) -> Value {
    if kind == "volumes" {
        json!({
            "Name": name,
            "Driver": "local",
            "Mountpoint": format!("/var/lib/docker/volumes/{name}/_data"),
            "Labels": {},
            "Scope": "local",
            "Options": {},
        })
    } else {
        json!({ "Id": name, "Name": name, "Warning": "" })
    }
}

/// `GET /networks/{name}` and `GET /volumes/{name}`.
pub fn inspect(things: &Things, kind: &str, name: &str) -> Response {
    if set_of(things, kind)
        .lock()
        .expect("the stub's lock")
        .contains(name)
    {
        axum::Json(described(kind, name)).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("{kind} {name} not found"))
    }
}

/// `DELETE /networks/{name}` and `DELETE /volumes/{name}`.
pub fn remove(things: &Things, kind: &str, name: &str) -> Response {
    if set_of(things, kind)
        .lock()
        .expect("the stub's lock")
        .remove(name)
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("{kind} {name} not found"))
    }
}

/// `GET /networks` and `GET /volumes`.
pub fn list(things: &Things, kind: &str) -> Response {
    let names: Vec<Value> = set_of(things, kind)
        .lock()
        .expect("the stub's lock")
        .iter()
        .map(|name| described(kind, name))
        .collect();
    if kind == "volumes" {
        axum::Json(json!({ "Volumes": names })).into_response()
    } else {
        axum::Json(Value::Array(names)).into_response()
    }
}

fn set_of<'a>(things: &'a Things, kind: &str) -> &'a Mutex<BTreeSet<String>> {
    if kind == "networks" {
        &things.networks
    } else {
        &things.volumes
    }
}

/// `PUT /containers/{id}/archive?path=DIR`: keeps each regular file of the
/// tar archive under `DIR`.
pub fn put_archive(things: &Things, dir: &str, body: &Bytes) -> Response {
    let mut archive = tar::Archive::new(&body[..]);
    let Ok(entries) = archive.entries() else {
        return error(StatusCode::BAD_REQUEST, "not a tar archive");
    };
    let mut files = things.files.lock().expect("the stub's lock");
    for entry in entries {
        let Ok(mut entry) = entry else {
            return error(StatusCode::BAD_REQUEST, "a broken tar archive");
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry
            .path()
            .map(|path| path.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut data = Vec::new();
        if entry.read_to_end(&mut data).is_err() {
            return error(StatusCode::BAD_REQUEST, "a broken tar archive");
        }
        files.insert(format!("{}/{path}", dir.trim_end_matches('/')), data);
    }
    StatusCode::OK.into_response()
}

/// `GET /containers/{id}/archive?path=FILE`: a tar archive of one file put
/// before, or 404.
pub fn get_archive(things: &Things, path: &str) -> Response {
    let files = things.files.lock().expect("the stub's lock");
    let Some(data) = files.get(path) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("Could not find the file {path}"),
        );
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o755);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    if builder.append_data(&mut header, name, &data[..]).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "building a tar archive");
    }
    match builder.into_inner() {
        Ok(archive) => archive.into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "building a tar archive"),
    }
}
