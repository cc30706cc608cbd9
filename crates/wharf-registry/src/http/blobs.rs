//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`: served only from a
//! repository that links the blob, streamed from the store, with ranges; a
//! miss in a proxy-cache repository goes to its upstream (`crate::proxy`).

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use wharf_oci::{Digest, ErrorCode, RepositoryName};
use wharf_store::ByteRange;

use crate::Inner;
use crate::db;
use crate::error::{RegistryError, Result};
use crate::proxy::{self, BlobMiss};

fn blob_unknown(digest: &Digest) -> RegistryError {
    RegistryError::with_detail(
        ErrorCode::BlobUnknown,
        "blob unknown to registry",
        serde_json::json!({ "digest": digest.to_string() }),
    )
}

pub async fn get(
    req: &HttpRequest,
    reg: &Inner,
    name: &RepositoryName,
    digest: &Digest,
    head: bool,
) -> Result<HttpResponse> {
    let size = match db::blobs::linked_size(&reg.pool, name, digest).await? {
        Some(size) => size,
        None => match proxy::blob(reg, name, digest, head).await? {
            BlobMiss::NotProxied => return Err(blob_unknown(digest)),
            BlobMiss::Response(resp) => return Ok(resp),
            BlobMiss::Linked => db::blobs::linked_size(&reg.pool, name, digest)
                .await?
                .ok_or_else(|| blob_unknown(digest))?,
        },
    };
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) => parse_range(value, size)?,
        None => None,
    };
    let mut resp = match range {
        Some(_) => HttpResponse::PartialContent(),
        None => HttpResponse::Ok(),
    };
    resp.insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header(("Docker-Content-Digest", digest.to_string()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::ETAG, format!("\"{digest}\"")))
        .insert_header((header::CACHE_CONTROL, "max-age=31536000"));
    if let Some(r) = range {
        resp.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", r.start, r.end_inclusive),
        ));
    }
    let len = range.map_or(size, |r| r.end_inclusive - r.start + 1);
    if head {
        return Ok(resp.body(SizedStream::new(
            len,
            futures_util::stream::empty::<Result<bytes::Bytes, RegistryError>>(),
        )));
    }
    let body = reg.store.get(digest, range).await?;
    Ok(resp.body(SizedStream::new(body.len, body.stream)))
}

/// Parse a single `bytes=` range against a blob of `size` bytes. Syntax we do
/// not serve (several ranges, other units, garbage) is ignored as RFC 9110
/// allows; a well-formed range outside the blob is 416.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<ByteRange>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = Err(RegistryError::BlobRangeNotSatisfiable { size });
    let range = if a.is_empty() {
        let Ok(suffix) = b.parse::<u64>() else {
            return Ok(None);
        };
        if suffix == 0 || size == 0 {
            return unsatisfiable;
        }
        ByteRange {
            start: size.saturating_sub(suffix),
            end_inclusive: size - 1,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return Ok(None);
        };
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(end) if end >= start => end.min(size.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return unsatisfiable;
        }
        ByteRange {
            start,
            end_inclusive: end,
        }
    };
    Ok(Some(range))
}

pub async fn delete(reg: &Inner, name: &RepositoryName, digest: &Digest) -> Result<HttpResponse> {
    if !db::blobs::unlink(&reg.pool, name, digest).await? {
        return Err(blob_unknown(digest));
    }
    Ok(HttpResponse::Accepted()
        .insert_header(("Docker-Content-Digest", digest.to_string()))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, size: u64) -> Option<(u64, u64)> {
        parse_range(v, size)
            .unwrap()
            .map(|r| (r.start, r.end_inclusive))
    }

    #[test]
    fn ranges() {
        assert_eq!(r("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(r("bytes=90-", 100), Some((90, 99)));
        assert_eq!(r("bytes=-10", 100), Some((90, 99)));
        assert_eq!(r("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(r("bytes=0-1,5-6", 100), None);
        assert_eq!(r("items=0-1", 100), None);
        assert_eq!(r("bytes=9-3", 100), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
    }
}
