//! Request bodies: streamed into the store for blobs, read with a cap for manifests.

use std::io;

use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use wharf_oci::{ErrorCode, MAX_MANIFEST_SIZE};
use wharf_store::ByteStream;

use crate::error::RegistryError;

/// Chunks in flight between the connection and the store: enough to keep both
/// busy, small enough that memory per upload stays bounded.
const IN_FLIGHT_CHUNKS: usize = 16;

/// Hand a request body to the store as a `Send` stream. actix's payload lives
/// on its worker thread, so a local task forwards its chunks through a bounded
/// channel (backpressure preserved, no copies: `Bytes` moves).
pub fn stream(mut payload: web::Payload) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(IN_FLIGHT_CHUNKS);
    actix_web::rt::spawn(async move {
        while let Some(chunk) = payload.next().await {
            let failed = chunk.is_err();
            let item =
                chunk.map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()));
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Read a manifest body, refusing more than the manifest size limit with 413.
pub async fn read_manifest(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
) -> Result<Bytes, RegistryError> {
    let too_large = || {
        RegistryError::Distribution(
            wharf_oci::DistributionError::new(
                ErrorCode::SizeInvalid,
                format!("manifest exceeds the {MAX_MANIFEST_SIZE} byte limit"),
            )
            .with_status(413),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_SIZE) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(MAX_MANIFEST_SIZE));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::code(
                ErrorCode::ManifestInvalid,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_MANIFEST_SIZE {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
