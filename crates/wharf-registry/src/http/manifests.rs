//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.
//!
//! A push is validated completely (shape, digest, every referenced blob and
//! child manifest present in the repository, admission policy), its bytes made
//! durable in the store, and only then recorded — manifest, references and tag
//! in one transaction — so a crash at any point leaves either the whole push or
//! nothing visible.

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use wharf_oci::{
    Digest, DigestAlgorithm, DistributionError, ErrorCode, ParsedManifest, Reference,
    RepositoryName, Tag,
};

use super::{body, query_params};
use crate::Inner;
use crate::db;
use crate::error::{RegistryError, Result};
use crate::seams::{Deletion, ManifestPush, Principal, RegistryEvent};

fn manifest_unknown(reference: &Reference) -> RegistryError {
    let detail = match reference {
        Reference::Tag(t) => serde_json::json!({ "tag": t.as_str() }),
        Reference::Digest(d) => serde_json::json!({ "digest": d.to_string() }),
    };
    RegistryError::with_detail(
        ErrorCode::ManifestUnknown,
        "manifest unknown to registry",
        detail,
    )
}

/// Media types the client listed in `Accept` (parameters and q-values dropped).
fn accepted_types(req: &HttpRequest) -> Vec<String> {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

pub async fn get(
    req: &HttpRequest,
    reg: &Inner,
    name: &RepositoryName,
    reference: &Reference,
    who: Principal,
    head: bool,
) -> Result<HttpResponse> {
    let stored = match reference {
        Reference::Tag(tag) => db::manifests::find_by_tag(&reg.pool, name, tag.as_str()).await?,
        Reference::Digest(digest) => db::manifests::find_by_digest(&reg.pool, name, digest).await?,
    };
    let stored = crate::proxy::manifest(reg, name, reference, stored).await?;
    let Some(stored) = stored else {
        return Err(manifest_unknown(reference));
    };
    // The bytes are always the ones pushed; a client that cannot accept their
    // media type is told so rather than handed something it cannot parse.
    let accepted = accepted_types(req);
    let acceptable = accepted.is_empty()
        || accepted
            .iter()
            .any(|t| t == "*/*" || t == "application/*" || *t == stored.media_type);
    if !acceptable {
        return Err(RegistryError::with_detail(
            ErrorCode::ManifestUnknown,
            "the manifest exists but not in a media type the client accepts",
            serde_json::json!({ "mediaType": stored.media_type, "accept": accepted }),
        ));
    }
    let len = stored.content.len() as u64;
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, stored.media_type.as_str()))
        .insert_header(("Docker-Content-Digest", stored.digest.as_str()))
        .insert_header((header::ETAG, format!("\"{}\"", stored.digest)));
    if head {
        return Ok(resp.body(SizedStream::new(
            len,
            futures_util::stream::empty::<Result<bytes::Bytes, RegistryError>>(),
        )));
    }
    if let Ok(digest) = Digest::parse(&stored.digest) {
        reg.events.record_pull(RegistryEvent::ManifestPulled {
            repository: name.clone(),
            digest,
            tag: match reference {
                Reference::Tag(t) => Some(t.as_str().to_owned()),
                Reference::Digest(_) => None,
            },
            actor: who,
        });
    }
    Ok(resp.body(stored.content))
}

pub async fn put(
    req: &HttpRequest,
    payload: web::Payload,
    reg: &Inner,
    name: &RepositoryName,
    reference: &Reference,
    who: Principal,
) -> Result<HttpResponse> {
    let bytes = body::read_manifest(req, payload).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let manifest = ParsedManifest::parse(content_type, &bytes).map_err(DistributionError::from)?;
    let (digest, tags) = match reference {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), &bytes);
            if actual != *expected {
                return Err(RegistryError::with_detail(
                    ErrorCode::DigestInvalid,
                    "provided digest did not match the manifest's content",
                    serde_json::json!({ "expected": expected.to_string(), "actual": actual.to_string() }),
                ));
            }
            (actual, tags_from_query(req)?)
        }
        Reference::Tag(tag) => (
            Digest::of(DigestAlgorithm::Sha256, &bytes),
            vec![tag.clone()],
        ),
    };

    let blob_refs: Vec<_> = manifest.blob_references().collect();
    let wanted: Vec<String> = blob_refs.iter().map(|d| d.digest.to_string()).collect();
    let mut tx = reg.pool.begin().await?;
    // Garbage collection must not delete what this manifest is about to
    // reference (see db::blob_locks): hold every digest, the manifest's own
    // included, until the commit.
    let mut locked = wanted.clone();
    locked.push(digest.to_string());
    // An index's children too: collection may be deleting an untagged one.
    locked.extend(manifest.manifests.iter().map(|d| d.digest.to_string()));
    db::blob_locks::share(&mut tx, &locked).await?;
    let repository_id = db::repositories::ensure(&mut tx, name).await?;

    let linked = db::blobs::linked_sizes(&mut tx, repository_id, &wanted).await?;
    let mut blobs = Vec::with_capacity(blob_refs.len());
    for descriptor in &blob_refs {
        let key = descriptor.digest.to_string();
        match linked.get(&key) {
            None => {
                return Err(RegistryError::with_detail(
                    ErrorCode::ManifestBlobUnknown,
                    "manifest references a blob unknown to this repository",
                    serde_json::json!({ "digest": key }),
                ));
            }
            Some(&size) if size != descriptor.size => {
                return Err(RegistryError::with_detail(
                    ErrorCode::ManifestInvalid,
                    "a descriptor's size does not match the blob",
                    serde_json::json!({ "digest": key, "descriptorSize": descriptor.size, "blobSize": size }),
                ));
            }
            Some(&size) => blobs.push((key, size)),
        }
    }
    let children: Vec<String> = manifest
        .manifests
        .iter()
        .map(|d| d.digest.to_string())
        .collect();
    if !children.is_empty() {
        let present = db::manifests::existing(&mut tx, repository_id, &children).await?;
        if let Some(missing) = children.iter().find(|d| !present.contains(*d)) {
            return Err(RegistryError::with_detail(
                ErrorCode::ManifestBlobUnknown,
                "index references a manifest unknown to this repository",
                serde_json::json!({ "digest": missing }),
            ));
        }
    }

    let tag_names: Vec<&str> = tags.iter().map(Tag::as_str).collect();
    reg.admission
        .admit_manifest(
            &mut tx,
            &ManifestPush {
                repository: name,
                repository_id,
                digest: &digest,
                tags: &tag_names,
                media_type: &manifest.media_type,
                size: bytes.len() as u64,
                blobs: &blobs,
                children: &children,
                subject: manifest.subject.as_ref().map(|s| &s.digest),
            },
        )
        .await?;

    // Durable bytes first: a committed row never points at missing content.
    reg.store.put_verified(&digest, bytes.clone()).await?;
    db::blobs::record_and_link(&mut tx, repository_id, &digest, bytes.len() as u64).await?;
    let manifest_id =
        db::manifests::insert(&mut tx, repository_id, &digest, &manifest, &bytes).await?;
    for tag in &tags {
        db::tags::upsert(&mut tx, repository_id, tag.as_str(), manifest_id).await?;
    }
    // One event per tag set, or one untagged push.
    let event_tags: Vec<Option<&str>> = if tag_names.is_empty() {
        vec![None]
    } else {
        tag_names.iter().copied().map(Some).collect()
    };
    for tag in event_tags {
        let event = RegistryEvent::ManifestPushed {
            repository: name.clone(),
            digest: digest.clone(),
            tag: tag.map(str::to_owned),
            media_type: manifest.media_type.clone(),
            size: bytes.len() as u64,
            actor: who.clone(),
        };
        reg.events.record_change(&mut tx, &event).await?;
    }
    tx.commit().await?;

    let mut resp = HttpResponse::Created();
    resp.insert_header((header::LOCATION, format!("/v2/{name}/manifests/{digest}")))
        .insert_header(("Docker-Content-Digest", digest.to_string()));
    if matches!(reference, Reference::Digest(_)) {
        for tag in &tags {
            resp.append_header(("OCI-Tag", tag.as_str()));
        }
    }
    if let Some(subject) = &manifest.subject {
        resp.insert_header(("OCI-Subject", subject.digest.to_string()));
    }
    Ok(resp.finish())
}

/// Most tags one push by digest may set with `?tag=`.
const MAX_TAGS_PER_PUSH: usize = 100;

/// The `?tag=` parameters of a push by digest (distribution spec, after 1.1.1):
/// every one is set to the pushed manifest, and echoed in `OCI-Tag`.
fn tags_from_query(req: &HttpRequest) -> Result<Vec<Tag>> {
    let values = query_params(req, "tag");
    if values.len() > MAX_TAGS_PER_PUSH {
        return Err(RegistryError::Distribution(
            DistributionError::new(
                ErrorCode::Unsupported,
                format!("at most {MAX_TAGS_PER_PUSH} tags may be set by one push"),
            )
            .with_status(414),
        ));
    }
    values
        .iter()
        .map(|v| {
            Tag::parse(v).map_err(|e| {
                RegistryError::with_detail(
                    ErrorCode::ManifestInvalid,
                    "invalid tag",
                    serde_json::json!({ "tag": v, "reason": e.to_string() }),
                )
            })
        })
        .collect()
}

pub async fn delete(
    reg: &Inner,
    name: &RepositoryName,
    reference: &Reference,
    who: Principal,
) -> Result<HttpResponse> {
    delete_reference(reg, name, reference, who).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Delete a tag, or a manifest with every tag on it, after admission, with
/// its event, in one transaction. `MANIFEST_UNKNOWN` when there is none.
pub(crate) async fn delete_reference(
    reg: &Inner,
    name: &RepositoryName,
    reference: &Reference,
    who: Principal,
) -> Result<()> {
    let mut tx = reg.pool.begin().await?;
    let Some(repository_id) = db::repositories::id_of(&mut tx, name).await? else {
        return Err(manifest_unknown(reference));
    };
    let event = match reference {
        Reference::Tag(tag) => {
            let deletion = Deletion {
                repository: name,
                repository_id,
                tag: Some(tag.as_str()),
                digest: None,
            };
            reg.admission.admit_delete(&mut tx, &deletion).await?;
            if !db::tags::delete(&mut tx, name, tag.as_str()).await? {
                return Err(manifest_unknown(reference));
            }
            RegistryEvent::TagDeleted {
                repository: name.clone(),
                tag: tag.as_str().to_owned(),
                actor: who,
            }
        }
        Reference::Digest(digest) => {
            let deletion = Deletion {
                repository: name,
                repository_id,
                tag: None,
                digest: Some(digest),
            };
            reg.admission.admit_delete(&mut tx, &deletion).await?;
            if !db::manifests::delete(&mut tx, name, digest).await? {
                return Err(manifest_unknown(reference));
            }
            RegistryEvent::ManifestDeleted {
                repository: name.clone(),
                digest: digest.clone(),
                actor: who,
            }
        }
    };
    reg.events.record_change(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(())
}
