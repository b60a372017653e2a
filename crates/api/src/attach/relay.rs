//! A client's socket that reached an API other than the one holding its
//! interactive run: relayed, frame for frame, to the holding API.
//!
//! An interactive run lives on the API that created it (its line, its
//! session, its worker's socket); the job row names that API by its
//! advertised URL. Behind a load balancer, a client's attach (or its
//! reconnect) may reach any API. Rather than moving a live bridge between
//! processes, the API that gets the client dials the holder with the
//! client's own token and pumps frames both ways. The holder does every
//! check and sees an ordinary client, so the protocol (sequence numbers,
//! input offsets and acks, close codes) is untouched.

use axum::extract::ws::{CloseFrame, Message as ClientMessage, WebSocket as ClientSocket};
use futures::{SinkExt, StreamExt};
use reqwest_websocket::{Message as HolderMessage, Upgrade, WebSocket as HolderSocket};

use crate::error::ApiError;

/// Marks a relayed attach: the API that receives one serves it itself and
/// never relays it again, so two names of one API cannot make a loop.
pub const RELAYED_HEADER: &str = "x-jobs-relayed";

/// Whether `holder` (a job's attach URL) names this API (`advertised`).
pub fn is_this_api(holder: &str, advertised: &str) -> bool {
    holder.trim_end_matches('/') == advertised.trim_end_matches('/')
}

/// Opens the client's socket on the holding API. A refusal there (404, 409,
/// 401, …) comes back as that API's own answer.
pub async fn dial_holder(
    client: &reqwest::Client,
    holder: &str,
    job_id: &str,
    query: Option<&str>,
    token: &str,
) -> Result<Result<HolderSocket, axum::response::Response>, ApiError> {
    let mut url = format!("{}/v1/jobs/{job_id}/attach", holder.trim_end_matches('/'));
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        url.push('?');
        url.push_str(query);
    }
    let unreachable = |error: &dyn std::fmt::Display| {
        ApiError::Unavailable(format!(
            "the API that holds interactive run {job_id} ({holder}) cannot be reached: {error}; \
             try again"
        ))
    };
    let response = client
        .get(&url)
        .bearer_auth(token)
        .header(RELAYED_HEADER, "1")
        .upgrade()
        .send()
        .await
        .map_err(|error| unreachable(&error))?;
    let status = response.status();
    if status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .cloned();
        let body = response
            .into_inner()
            .bytes()
            .await
            .map_err(|error| unreachable(&error))?;
        let mut answer = axum::response::Response::new(axum::body::Body::from(body));
        *answer.status_mut() = axum::http::StatusCode::from_u16(status.as_u16())
            .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
        if let Some(content_type) = content_type
            && let Ok(value) = axum::http::HeaderValue::from_bytes(content_type.as_bytes())
        {
            answer
                .headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, value);
        }
        return Ok(Err(answer));
    }
    let socket = response
        .into_websocket()
        .await
        .map_err(|error| unreachable(&error))?;
    Ok(Ok(socket))
}

/// Pumps frames both ways until either side closes; a close is passed on
/// with its code and reason.
pub async fn pump(client: ClientSocket, holder: HolderSocket, job_id: String) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut holder_tx, mut holder_rx) = holder.split();
    let to_holder = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let closing = matches!(message, ClientMessage::Close(_));
            if holder_tx.send(to_holder_message(message)).await.is_err() || closing {
                break;
            }
        }
        let _ = holder_tx.close().await;
    };
    let to_client = async {
        while let Some(Ok(message)) = holder_rx.next().await {
            let closing = matches!(message, HolderMessage::Close { .. });
            if client_tx.send(to_client_message(message)).await.is_err() || closing {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    // Either direction ending ends the relay: the client reconnects.
    tokio::select! {
        () = to_holder => {}
        () = to_client => {}
    }
    tracing::debug!(job_id, "relay to the holding API ended");
}

fn to_holder_message(message: ClientMessage) -> HolderMessage {
    match message {
        ClientMessage::Text(text) => HolderMessage::Text(text.as_str().to_owned()),
        ClientMessage::Binary(bytes) => HolderMessage::Binary(bytes),
        ClientMessage::Ping(bytes) => HolderMessage::Ping(bytes),
        ClientMessage::Pong(bytes) => HolderMessage::Pong(bytes),
        ClientMessage::Close(frame) => {
            let (code, reason) = frame.map_or((1000, String::new()), |frame| {
                (frame.code, frame.reason.as_str().to_owned())
            });
            HolderMessage::Close {
                code: code.into(),
                reason,
            }
        }
    }
}

fn to_client_message(message: HolderMessage) -> ClientMessage {
    match message {
        HolderMessage::Text(text) => ClientMessage::Text(text.into()),
        HolderMessage::Binary(bytes) => ClientMessage::Binary(bytes),
        HolderMessage::Ping(bytes) => ClientMessage::Ping(bytes),
        HolderMessage::Pong(bytes) => ClientMessage::Pong(bytes),
        HolderMessage::Close { code, reason } => ClientMessage::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_its_own_address() {
        assert!(is_this_api("http://a:8420/", "http://a:8420"));
        assert!(!is_this_api("http://a:8420", "http://b:8420"));
    }

    #[test]
    fn passes_close_codes_through() {
        let closed = to_client_message(HolderMessage::Close {
            code: 4001.into(),
            reason: "replaced".into(),
        });
        let ClientMessage::Close(Some(frame)) = closed else {
            panic!("a close frame");
        };
        assert_eq!((frame.code, frame.reason.as_str()), (4001, "replaced"));
        let HolderMessage::Close { code, reason } = to_holder_message(ClientMessage::Close(None))
        else {
            panic!("a close frame");
        };
        assert_eq!((u16::from(code), reason.as_str()), (1000, ""));
    }
}
