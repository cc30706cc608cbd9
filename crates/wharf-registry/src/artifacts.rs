//! Artifact operations the REST API needs beyond `/v2`: pointing a new tag at
//! a manifest already stored, copying an artifact (with its index children
//! and its accessories) into another repository, and reading small blobs
//! (image configs, chart archives) for the artifact read model.
//!
//! Tagging and copying are writes exactly like a manifest `PUT`, with the
//! same guarantees: one transaction that holds shared blob locks on every
//! digest it makes reachable until it commits (so garbage collection cannot
//! delete those bytes underneath it, see `db::blob_locks`), asks admission
//! (`admit_manifest`: quota, immutability) about every manifest it stores or
//! tags before writing it, and hands the sink one `ManifestPushed` event per
//! tag set (or per untagged manifest) inside the transaction. No bytes are
//! written to the store: blobs are instance-wide, only their links to the
//! target repository are new.

use std::collections::{HashMap, HashSet};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use sqlx::PgConnection;
use wharf_oci::{Digest, ErrorCode, ParsedManifest, Reference, RepositoryName, Tag};

use crate::error::{RegistryError, Result};
use crate::seams::{ManifestPush, Principal, RegistryEvent};
use crate::{Inner, Registry, db};

/// Most manifests one copy may carry (an index, its children and the
/// accessories of all of them); a guard against pathological graphs.
const MAX_COPIED_MANIFESTS: usize = 10_000;

/// What [`Registry::tag`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tagged {
    /// The tag now points at the manifest.
    Created,
    /// The repository already has a tag of that name (pointing at `digest`);
    /// nothing changed. Moving a tag is a push, not a tag creation.
    Exists { digest: String },
}

/// What [`Registry::read_blob`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobContent {
    /// The blob's bytes.
    Bytes(Bytes),
    /// The repository does not link this blob (or its bytes are gone).
    Missing,
    /// The blob is larger than the caller's limit; nothing was read.
    TooLarge { size: u64 },
}

/// A stored manifest with what a write of it needs to tell admission.
#[derive(Debug, Clone, sqlx::FromRow)]
struct StoredManifest {
    id: i64,
    digest: String,
    media_type: String,
    size: i64,
    subject_digest: Option<String>,
    content: Vec<u8>,
}

impl Registry {
    /// Point a new tag `tag` at the manifest `digest` of `repository`, as a
    /// push of that manifest with that tag would (admission, blob locks,
    /// event, one transaction). An existing tag of the name is left alone
    /// ([`Tagged::Exists`]). `MANIFEST_UNKNOWN` if there is no such manifest.
    pub async fn tag(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        tag: &Tag,
        actor: Principal,
    ) -> Result<Tagged> {
        let reg = &self.inner;
        let mut tx = reg.pool.begin().await?;
        let Some(repository_id) = db::repositories::id_of(&mut tx, repository).await? else {
            return Err(manifest_unknown(&digest.to_string()));
        };
        let Some(manifest) =
            manifest_by_digest(&mut tx, repository_id, &digest.to_string()).await?
        else {
            return Err(manifest_unknown(&digest.to_string()));
        };
        let refs = references(&mut tx, &[&manifest]).await?;
        let (blobs, children) = refs.get(&manifest.id).cloned().unwrap_or_default();
        let mut locked: Vec<String> = blobs.iter().map(|(d, _)| d.clone()).collect();
        locked.extend(children.iter().cloned());
        locked.push(manifest.digest.clone());
        db::blob_locks::share(&mut tx, &locked).await?;
        // Garbage collection may have removed the manifest between the read
        // and the locks; under the locks the answer is final.
        if manifest_by_digest(&mut tx, repository_id, &manifest.digest)
            .await?
            .is_none_or(|m| m.id != manifest.id)
        {
            return Err(manifest_unknown(&manifest.digest));
        }
        if let Some(existing) = tagged_digest(&mut tx, repository_id, tag.as_str()).await? {
            return Ok(Tagged::Exists { digest: existing });
        }
        let subject = parse_digest_opt(manifest.subject_digest.as_deref());
        reg.admission
            .admit_manifest(
                &mut tx,
                &ManifestPush {
                    repository,
                    repository_id,
                    digest,
                    tags: &[tag.as_str()],
                    media_type: &manifest.media_type,
                    size: manifest.size as u64,
                    blobs: &blobs,
                    children: &children,
                    subject: subject.as_ref(),
                },
            )
            .await?;
        // A `DELETE` by digest takes no blob lock, only admission's: one that
        // committed before admission let this transaction through has taken
        // the manifest. Held from here, the row cannot go before the commit.
        let still: Option<i64> =
            sqlx::query_scalar("SELECT id FROM manifests WHERE id = $1 FOR KEY SHARE")
                .bind(manifest.id)
                .fetch_optional(&mut *tx)
                .await?;
        if still.is_none() {
            return Err(manifest_unknown(&manifest.digest));
        }
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tags (repository_id, name, manifest_id) VALUES ($1, $2, $3)
             ON CONFLICT (repository_id, name) DO NOTHING RETURNING manifest_id",
        )
        .bind(repository_id)
        .bind(tag.as_str())
        .bind(manifest.id)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // Created concurrently by another request, which has committed.
            let existing = tagged_digest(&mut tx, repository_id, tag.as_str())
                .await?
                .unwrap_or_default();
            return Ok(Tagged::Exists { digest: existing });
        }
        let event = RegistryEvent::ManifestPushed {
            repository: repository.clone(),
            digest: digest.clone(),
            tag: Some(tag.as_str().to_owned()),
            media_type: manifest.media_type.clone(),
            size: manifest.size as u64,
            actor,
        };
        reg.events.record_change(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(Tagged::Created)
    }

    /// Copy the artifact `reference` of `source` into `target` (created if
    /// new): the manifest, the children of an index (recursively), the
    /// accessories of each of them (manifests whose `subject` it is, and
    /// cosign's `sha256-<hex>.sig` tags), their blob links, and the tags each
    /// of those manifests has in `source` — as Harbor's copy does. Every
    /// manifest goes through admission with its tags; a tag that exists in
    /// `target` is moved. Returns the copied manifest's digest.
    /// `MANIFEST_UNKNOWN` if `source` has no such artifact.
    pub async fn copy(
        &self,
        source: &RepositoryName,
        reference: &Reference,
        target: &RepositoryName,
        actor: Principal,
    ) -> Result<Digest> {
        let reg = &self.inner;
        let mut tx = reg.pool.begin().await?;
        let unknown = || manifest_unknown(&reference.to_string());
        let Some(source_id) = db::repositories::id_of(&mut tx, source).await? else {
            return Err(unknown());
        };
        let root = match reference {
            Reference::Digest(d) => manifest_by_digest(&mut tx, source_id, &d.to_string()).await?,
            Reference::Tag(t) => manifest_by_tag(&mut tx, source_id, t.as_str()).await?,
        };
        let Some(root) = root else {
            return Err(unknown());
        };
        let root_digest = Digest::parse(&root.digest)
            .map_err(|_| RegistryError::code(ErrorCode::ManifestInvalid, "stored digest"))?;

        let plan = CopyPlan::collect(&mut tx, source_id, root).await?;
        let mut locked: Vec<String> = plan.manifests.iter().map(|m| m.digest.clone()).collect();
        for (blobs, _) in plan.references.values() {
            locked.extend(blobs.iter().map(|(d, _)| d.clone()));
        }
        db::blob_locks::share(&mut tx, &locked).await?;
        let ids: Vec<i64> = plan.manifests.iter().map(|m| m.id).collect();
        let still_there: i64 =
            sqlx::query_scalar("SELECT count(*) FROM manifests WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_one(&mut *tx)
                .await?;
        if still_there != ids.len() as i64 {
            return Err(RegistryError::code(
                ErrorCode::ManifestUnknown,
                "part of the artifact was deleted while it was being copied; try again",
            ));
        }

        let target_id = db::repositories::ensure(&mut tx, target).await?;
        for manifest in &plan.manifests {
            let (blobs, children) = plan
                .references
                .get(&manifest.id)
                .cloned()
                .unwrap_or_default();
            let tags = plan.tags.get(&manifest.id).cloned().unwrap_or_default();
            copy_one(
                reg, &mut tx, target, target_id, manifest, &blobs, &children, &tags, &actor,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(root_digest)
    }

    /// The bytes of blob `digest` if `repository` links it and it is at most
    /// `limit` bytes (configs and chart archives for the REST API; never for
    /// serving layers).
    pub async fn read_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        limit: u64,
    ) -> Result<BlobContent> {
        let reg = &self.inner;
        let Some(size) = db::blobs::linked_size(&reg.pool, repository, digest).await? else {
            return Ok(BlobContent::Missing);
        };
        if size > limit {
            return Ok(BlobContent::TooLarge { size });
        }
        let body = match reg.store.get(digest, None).await {
            Ok(body) => body,
            Err(wharf_store::StoreError::NotFound) => return Ok(BlobContent::Missing),
            Err(e) => return Err(e.into()),
        };
        let mut bytes = BytesMut::with_capacity(body.len as usize);
        let mut stream = body.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Ok(BlobContent::TooLarge { size });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(BlobContent::Bytes(bytes.freeze()))
    }
}

/// Store one manifest of a copy in the target repository, after admission:
/// blob links, the manifest row and references, its tags, its events.
#[allow(clippy::too_many_arguments)]
async fn copy_one(
    reg: &Inner,
    tx: &mut PgConnection,
    target: &RepositoryName,
    target_id: i64,
    manifest: &StoredManifest,
    blobs: &[(String, u64)],
    children: &[String],
    tags: &[String],
    actor: &Principal,
) -> Result<()> {
    let digest = Digest::parse(&manifest.digest)
        .map_err(|_| RegistryError::code(ErrorCode::ManifestInvalid, "stored digest"))?;
    let subject = parse_digest_opt(manifest.subject_digest.as_deref());
    let tag_names: Vec<&str> = tags.iter().map(String::as_str).collect();
    reg.admission
        .admit_manifest(
            tx,
            &ManifestPush {
                repository: target,
                repository_id: target_id,
                digest: &digest,
                tags: &tag_names,
                media_type: &manifest.media_type,
                size: manifest.size as u64,
                blobs,
                children,
                subject: subject.as_ref(),
            },
        )
        .await?;
    for (blob, size) in blobs {
        let blob = Digest::parse(blob)
            .map_err(|_| RegistryError::code(ErrorCode::ManifestInvalid, "stored digest"))?;
        db::blobs::record_and_link(tx, target_id, &blob, *size).await?;
    }
    db::blobs::record_and_link(tx, target_id, &digest, manifest.size as u64).await?;
    let parsed = parse_stored(manifest)?;
    let manifest_id =
        db::manifests::insert(tx, target_id, &digest, &parsed, &manifest.content).await?;
    for tag in tags {
        db::tags::upsert(tx, target_id, tag, manifest_id).await?;
    }
    let event_tags: Vec<Option<&str>> = if tags.is_empty() {
        vec![None]
    } else {
        tags.iter().map(|t| Some(t.as_str())).collect()
    };
    for tag in event_tags {
        let event = RegistryEvent::ManifestPushed {
            repository: target.clone(),
            digest: digest.clone(),
            tag: tag.map(str::to_owned),
            media_type: manifest.media_type.clone(),
            size: manifest.size as u64,
            actor: actor.clone(),
        };
        reg.events.record_change(tx, &event).await?;
    }
    Ok(())
}

/// Everything one copy carries, in the order it must be written: every
/// index after its children, every accessory after its subject.
struct CopyPlan {
    manifests: Vec<StoredManifest>,
    /// Per manifest id: referenced blobs with sizes, child manifest digests.
    references: HashMap<i64, References>,
    /// Per manifest id: its tags in the source repository.
    tags: HashMap<i64, Vec<String>>,
}

impl CopyPlan {
    async fn collect(
        tx: &mut PgConnection,
        source_id: i64,
        root: StoredManifest,
    ) -> Result<CopyPlan> {
        // Discover the graph breadth first, then order it.
        let mut found: HashMap<String, StoredManifest> = HashMap::new();
        let mut children_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut accessories_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut frontier = vec![root.digest.clone()];
        let root_digest = root.digest.clone();
        found.insert(root.digest.clone(), root);
        while !frontier.is_empty() {
            if found.len() > MAX_COPIED_MANIFESTS {
                return Err(RegistryError::code(
                    ErrorCode::Unsupported,
                    format!(
                        "an artifact of more than {MAX_COPIED_MANIFESTS} manifests cannot be copied"
                    ),
                ));
            }
            let mut next = Vec::new();
            for digest in std::mem::take(&mut frontier) {
                let children = parse_stored(&found[&digest])?
                    .manifests
                    .iter()
                    .map(|d| d.digest.to_string())
                    .collect::<Vec<_>>();
                for child in &children {
                    if !found.contains_key(child) {
                        let Some(row) = manifest_by_digest(tx, source_id, child).await? else {
                            return Err(RegistryError::with_detail(
                                ErrorCode::ManifestBlobUnknown,
                                "the index references a manifest its repository does not hold",
                                serde_json::json!({ "digest": child }),
                            ));
                        };
                        found.insert(child.clone(), row);
                        next.push(child.clone());
                    }
                }
                children_of.insert(digest.clone(), children);
                let accessories = accessories(tx, source_id, &digest).await?;
                let mut accessory_digests = Vec::new();
                for row in accessories {
                    accessory_digests.push(row.digest.clone());
                    if !found.contains_key(&row.digest) {
                        next.push(row.digest.clone());
                        found.insert(row.digest.clone(), row);
                    }
                }
                accessories_of.insert(digest, accessory_digests);
            }
            frontier = next;
        }

        let mut order = Vec::with_capacity(found.len());
        let mut visited = HashSet::new();
        // Iterative post-order: children first, then the manifest, then its
        // accessories (each of which again after its own children).
        enum Step {
            Enter(String),
            Emit(String),
        }
        let mut stack = vec![Step::Enter(root_digest)];
        while let Some(step) = stack.pop() {
            match step {
                Step::Enter(d) => {
                    if !visited.insert(d.clone()) {
                        continue;
                    }
                    for acc in accessories_of.get(&d).into_iter().flatten().rev() {
                        stack.push(Step::Enter(acc.clone()));
                    }
                    stack.push(Step::Emit(d.clone()));
                    for child in children_of.get(&d).into_iter().flatten().rev() {
                        stack.push(Step::Enter(child.clone()));
                    }
                }
                Step::Emit(d) => order.push(d),
            }
        }
        let manifests: Vec<StoredManifest> =
            order.into_iter().filter_map(|d| found.remove(&d)).collect();
        let ids: Vec<i64> = manifests.iter().map(|m| m.id).collect();
        let refs: Vec<&StoredManifest> = manifests.iter().collect();
        let references = references(tx, &refs).await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT manifest_id, name FROM tags WHERE manifest_id = ANY($1) ORDER BY name",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut tags: HashMap<i64, Vec<String>> = HashMap::new();
        for (id, name) in rows {
            tags.entry(id).or_default().push(name);
        }
        Ok(CopyPlan {
            manifests,
            references,
            tags,
        })
    }
}

fn manifest_unknown(reference: &str) -> RegistryError {
    RegistryError::with_detail(
        ErrorCode::ManifestUnknown,
        "manifest unknown to registry",
        serde_json::json!({ "reference": reference }),
    )
}

fn parse_digest_opt(digest: Option<&str>) -> Option<Digest> {
    digest.and_then(|d| Digest::parse(d).ok())
}

const MANIFEST_COLUMNS: &str = "m.id, m.digest, m.media_type, m.size, m.subject_digest, m.content";

async fn manifest_by_digest(
    conn: &mut PgConnection,
    repository_id: i64,
    digest: &str,
) -> sqlx::Result<Option<StoredManifest>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MANIFEST_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2"
    )))
    .bind(repository_id)
    .bind(digest)
    .fetch_optional(conn)
    .await
}

async fn manifest_by_tag(
    conn: &mut PgConnection,
    repository_id: i64,
    tag: &str,
) -> sqlx::Result<Option<StoredManifest>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MANIFEST_COLUMNS} FROM tags t JOIN manifests m ON m.id = t.manifest_id
          WHERE t.repository_id = $1 AND t.name = $2"
    )))
    .bind(repository_id)
    .bind(tag)
    .fetch_optional(conn)
    .await
}

/// The manifests of the repository that are accessories of `subject`: those
/// whose `subject` it is, and the one tagged with cosign's legacy signature
/// tag `sha256-<hex>.sig`.
async fn accessories(
    conn: &mut PgConnection,
    repository_id: i64,
    subject: &str,
) -> sqlx::Result<Vec<StoredManifest>> {
    let cosign_tag = subject
        .split_once(':')
        .map(|(alg, hex)| format!("{alg}-{hex}.sig"));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MANIFEST_COLUMNS} FROM manifests m
          WHERE m.repository_id = $1
            AND (m.subject_digest = $2
                 OR m.id IN (SELECT t.manifest_id FROM tags t
                              WHERE t.repository_id = $1 AND t.name = $3))
            AND m.digest <> $2
          ORDER BY m.created_at, m.id"
    )))
    .bind(repository_id)
    .bind(subject)
    .bind(cosign_tag)
    .fetch_all(conn)
    .await
}

/// The digest the tag points at, if the repository has the tag.
async fn tagged_digest(
    conn: &mut PgConnection,
    repository_id: i64,
    tag: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
          WHERE t.repository_id = $1 AND t.name = $2",
    )
    .bind(repository_id)
    .bind(tag)
    .fetch_optional(conn)
    .await
}

/// The blobs and children of one manifest.
type References = (Vec<(String, u64)>, Vec<String>);

/// Per manifest id: the blobs it requires in its repository (config and
/// layers other than foreign ones, exactly what a push checks) with their
/// sizes, and the digests of its child manifests.
async fn references(
    conn: &mut PgConnection,
    manifests: &[&StoredManifest],
) -> Result<HashMap<i64, References>> {
    let mut wanted: HashMap<i64, (Vec<String>, Vec<String>)> = HashMap::new();
    let mut all_blobs = Vec::new();
    for manifest in manifests {
        let parsed = parse_stored(manifest)?;
        let blobs: Vec<String> = parsed
            .blob_references()
            .map(|d| d.digest.to_string())
            .collect();
        all_blobs.extend(blobs.iter().cloned());
        let children = parsed
            .manifests
            .iter()
            .map(|d| d.digest.to_string())
            .collect();
        wanted.insert(manifest.id, (blobs, children));
    }
    let sizes: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT digest, size FROM blobs WHERE digest = ANY($1)")
            .bind(&all_blobs)
            .fetch_all(conn)
            .await?
            .into_iter()
            .collect();
    let mut out = HashMap::with_capacity(wanted.len());
    for (id, (blobs, children)) in wanted {
        let mut sized = Vec::with_capacity(blobs.len());
        for digest in blobs {
            let Some(&size) = sizes.get(&digest) else {
                return Err(RegistryError::with_detail(
                    ErrorCode::ManifestBlobUnknown,
                    "a stored manifest references a blob the registry no longer holds",
                    serde_json::json!({ "digest": digest }),
                ));
            };
            sized.push((digest, size as u64));
        }
        out.insert(id, (sized, children));
    }
    Ok(out)
}

/// Parse a manifest as stored (its bytes were validated when pushed).
fn parse_stored(manifest: &StoredManifest) -> Result<ParsedManifest> {
    ParsedManifest::parse(Some(&manifest.media_type), &manifest.content).map_err(|e| {
        RegistryError::with_detail(
            ErrorCode::ManifestInvalid,
            "a stored manifest no longer parses",
            serde_json::json!({ "digest": manifest.digest, "reason": e.to_string() }),
        )
    })
}
