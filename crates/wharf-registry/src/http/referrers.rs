//! `GET /v2/<name>/referrers/<digest>`: an OCI image index of the manifests
//! whose `subject` is the digest, optionally filtered by `artifactType`, with
//! referrers a client stored under the fallback tag folded in, and, in a
//! proxy-cache repository, the upstream's referrers.

use actix_web::{HttpRequest, HttpResponse};
use wharf_oci::{Digest, ParsedManifest, RepositoryName, media_types};

use super::query_param;
use crate::Inner;
use crate::db;
use crate::error::Result;

/// The tag clients without the referrers API use: `<alg>-<hex>`, algorithm cut
/// to 32 characters and hex to 64.
fn fallback_tag(subject: &Digest) -> String {
    let alg = subject.algorithm().as_str();
    let hex = subject.hex();
    format!(
        "{}-{}",
        &alg[..alg.len().min(32)],
        &hex[..hex.len().min(64)]
    )
}

pub async fn list(
    req: &HttpRequest,
    reg: &Inner,
    name: &RepositoryName,
    subject: &Digest,
) -> Result<HttpResponse> {
    let artifact_type = query_param(req, "artifactType").filter(|t| !t.is_empty());
    let rows = db::manifests::referrers(&reg.pool, name, subject, artifact_type.as_deref()).await?;
    let mut seen = std::collections::HashSet::new();
    let mut descriptors: Vec<serde_json::Value> = Vec::with_capacity(rows.len());
    for row in rows {
        seen.insert(row.digest.clone());
        let mut d = serde_json::json!({
            "mediaType": row.media_type,
            "digest": row.digest,
            "size": row.size,
        });
        if let Some(t) = row.artifact_type {
            d["artifactType"] = t.into();
        }
        if let Some(a) = row.annotations {
            d["annotations"] = a;
        }
        descriptors.push(d);
    }
    if let Some(fallback) =
        db::manifests::find_by_tag(&reg.pool, name, &fallback_tag(subject)).await?
        && let Ok(index) = ParsedManifest::parse(Some(&fallback.media_type), &fallback.content)
    {
        for child in index.manifests {
            let matches = artifact_type.is_none() || child.artifact_type == artifact_type;
            if matches && seen.insert(child.digest.to_string()) {
                descriptors.push(serde_json::to_value(&child).unwrap_or_default());
            }
        }
    }
    if reg.upstream.is_some()
        && let Some(index) = crate::proxy::referrers(reg, name, subject).await?
        && let Ok(index) = serde_json::from_slice::<serde_json::Value>(&index)
    {
        let upstream = index.get("manifests").and_then(|m| m.as_array());
        for child in upstream.into_iter().flatten() {
            let Some(digest) = child.get("digest").and_then(|d| d.as_str()) else {
                continue;
            };
            let child_type = child.get("artifactType").and_then(|t| t.as_str());
            let matches = artifact_type.is_none() || child_type == artifact_type.as_deref();
            if matches && seen.insert(digest.to_owned()) {
                descriptors.push(child.clone());
            }
        }
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": descriptors,
    });
    let mut resp = HttpResponse::Ok();
    resp.content_type(media_types::OCI_INDEX);
    if artifact_type.is_some() {
        resp.insert_header(("OCI-Filters-Applied", "artifactType"));
    }
    Ok(resp.body(body.to_string()))
}
