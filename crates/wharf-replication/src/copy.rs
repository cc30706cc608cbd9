//! The copy engine: one artifact (a tag) from a source registry to a
//! destination, with everything it needs there first. Blobs go only when
//! the destination lacks them (`HEAD` first, then a cross-repository mount
//! from a repository this copier already filled, then a streamed
//! transfer); an index brings all its children; accessories (signatures,
//! SBOMs: manifests whose `subject` is the artifact, found through the
//! referrers API or the `sha256-<hex>` fallback tags) follow their subject;
//! and the tag is written last, so a destination never shows a tag whose
//! content is missing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use crate::client::{Manifest, RegistryClient, ReplicationError, throttle};

type Result<T> = std::result::Result<T, ReplicationError>;

/// How a copy behaves (from the replication policy).
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Replace a destination tag that points at other content.
    pub override_tags: bool,
    /// Upload blobs in chunks of this many bytes instead of one stream.
    pub chunk_size: Option<usize>,
    /// Bandwidth limit per blob stream, KiB/s.
    pub speed_kib: Option<u64>,
    /// How many blobs of one manifest are copied at once.
    pub parallel_blobs: usize,
}

/// What a copier did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub manifests_copied: u64,
    pub manifests_present: u64,
    pub blobs_copied: u64,
    pub blobs_present: u64,
    pub blobs_mounted: u64,
    pub bytes_copied: u64,
    pub tags_pushed: u64,
    /// Tags left alone: already up to date, or pointing elsewhere without `override`.
    pub tags_skipped: u64,
    /// Digests of the blobs actually transferred, in order.
    pub transferred: Vec<String>,
}

/// What happened to one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOutcome {
    Copied {
        digest: String,
    },
    UpToDate {
        digest: String,
    },
    /// The destination tag points at other content and `override` is off.
    Kept {
        existing: String,
    },
}

/// Copies artifacts from `src` to `dst`. One copier serves one execution:
/// it remembers which destination repository received which blob, so a
/// layer shared by several repositories is transferred once and mounted
/// into the others.
pub struct Copier {
    src: Arc<RegistryClient>,
    dst: Arc<RegistryClient>,
    opts: CopyOptions,
    placed: Mutex<HashMap<String, String>>,
    src_tags: Mutex<HashMap<String, Vec<String>>>,
    report: Mutex<CopyReport>,
}

impl Copier {
    pub fn new(src: Arc<RegistryClient>, dst: Arc<RegistryClient>, opts: CopyOptions) -> Self {
        Self {
            src,
            dst,
            opts,
            placed: Mutex::new(HashMap::new()),
            src_tags: Mutex::new(HashMap::new()),
            report: Mutex::new(CopyReport::default()),
        }
    }

    /// The destination's client.
    pub fn destination(&self) -> &RegistryClient {
        &self.dst
    }

    pub fn report(&self) -> CopyReport {
        self.report.lock().expect("report").clone()
    }

    fn note(&self, f: impl FnOnce(&mut CopyReport)) {
        f(&mut self.report.lock().expect("report"));
    }

    /// The source's tags of `repo` that are artifacts of their own, not
    /// accessories following a subject (`sha256-<hex>[.sig|.att|...]`).
    pub async fn artifact_tags(&self, repo: &str) -> Result<Vec<String>> {
        Ok(self
            .source_tags(repo)
            .await?
            .into_iter()
            .filter(|t| !is_accessory_tag(t))
            .collect())
    }

    async fn source_tags(&self, repo: &str) -> Result<Vec<String>> {
        if let Some(t) = self.src_tags.lock().expect("tags").get(repo) {
            return Ok(t.clone());
        }
        let tags = self.src.tags(repo).await?;
        self.src_tags
            .lock()
            .expect("tags")
            .insert(repo.to_owned(), tags.clone());
        Ok(tags)
    }

    /// Copy `src_repo:tag` to `dst_repo:tag`.
    pub async fn copy_tag(&self, src_repo: &str, dst_repo: &str, tag: &str) -> Result<TagOutcome> {
        self.copy_tag_inner(src_repo, dst_repo, tag, self.opts.override_tags)
            .await
    }

    fn copy_tag_inner<'a>(
        &'a self,
        src_repo: &'a str,
        dst_repo: &'a str,
        tag: &'a str,
        override_tags: bool,
    ) -> Pin<Box<dyn Future<Output = Result<TagOutcome>> + Send + 'a>> {
        Box::pin(async move {
            let manifest = self.src.get_manifest(src_repo, tag).await?.ok_or_else(|| {
                ReplicationError::NotFound {
                    what: format!("{src_repo}:{tag}"),
                }
            })?;
            let existing = self.dst.head_manifest(dst_repo, tag).await?;
            match existing {
                Some(d) if d == manifest.digest => {
                    // The content is there; accessories may have been added since.
                    self.copy_accessories(src_repo, dst_repo, &manifest.digest)
                        .await?;
                    self.note(|r| r.tags_skipped += 1);
                    return Ok(TagOutcome::UpToDate { digest: d });
                }
                Some(d) if !override_tags => {
                    self.note(|r| r.tags_skipped += 1);
                    return Ok(TagOutcome::Kept { existing: d });
                }
                _ => {}
            }
            self.copy_manifest(src_repo, dst_repo, &manifest).await?;
            self.copy_accessories(src_repo, dst_repo, &manifest.digest)
                .await?;
            self.dst.put_manifest(dst_repo, tag, &manifest).await?;
            self.note(|r| r.tags_pushed += 1);
            Ok(TagOutcome::Copied {
                digest: manifest.digest,
            })
        })
    }

    /// Store `manifest` by digest on the destination, after everything it
    /// references.
    fn copy_manifest<'a>(
        &'a self,
        src_repo: &'a str,
        dst_repo: &'a str,
        manifest: &'a Manifest,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            let json = manifest.json()?;
            if let Some(children) = json.get("manifests").and_then(|m| m.as_array()) {
                for child in children {
                    let digest = descriptor_digest(child)?;
                    if self.dst.head_manifest(dst_repo, &digest).await?.is_some() {
                        self.note(|r| r.manifests_present += 1);
                        continue;
                    }
                    let child_manifest = self
                        .src
                        .get_manifest(src_repo, &digest)
                        .await?
                        .ok_or_else(|| ReplicationError::NotFound {
                            what: format!("{src_repo}@{digest} (child of {})", manifest.digest),
                        })?;
                    self.copy_manifest(src_repo, dst_repo, &child_manifest)
                        .await?;
                }
            } else {
                let mut blobs: Vec<(String, u64)> = Vec::new();
                let mut seen = HashSet::new();
                let descriptors = json
                    .get("config")
                    .into_iter()
                    .chain(
                        json.get("layers")
                            .and_then(|l| l.as_array())
                            .into_iter()
                            .flatten(),
                    )
                    .chain(
                        json.get("blobs")
                            .and_then(|l| l.as_array())
                            .into_iter()
                            .flatten(),
                    );
                for d in descriptors {
                    // Foreign layers live at their URLs, not in registries.
                    if d.get("urls").is_some() {
                        continue;
                    }
                    let digest = descriptor_digest(d)?;
                    let size = d.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
                    if seen.insert(digest.clone()) {
                        blobs.push((digest, size));
                    }
                }
                let parallel = self.opts.parallel_blobs.max(1);
                let results: Vec<Result<()>> = futures_util::stream::iter(blobs)
                    .map(|(digest, size)| async move {
                        self.copy_blob(src_repo, dst_repo, &digest, size).await
                    })
                    .buffer_unordered(parallel)
                    .collect()
                    .await;
                results.into_iter().collect::<Result<Vec<()>>>()?;
            }
            if self
                .dst
                .head_manifest(dst_repo, &manifest.digest)
                .await?
                .is_some()
            {
                self.note(|r| r.manifests_present += 1);
            } else {
                self.dst
                    .put_manifest(dst_repo, &manifest.digest, manifest)
                    .await?;
                self.note(|r| r.manifests_copied += 1);
            }
            Ok(())
        })
    }

    async fn copy_blob(
        &self,
        src_repo: &str,
        dst_repo: &str,
        digest: &str,
        size: u64,
    ) -> Result<()> {
        if self.dst.blob_exists(dst_repo, digest).await? {
            self.note(|r| r.blobs_present += 1);
            return Ok(());
        }
        let from = self.placed.lock().expect("placed").get(digest).cloned();
        if let Some(from) = from.filter(|f| f != dst_repo)
            && self.dst.mount_blob(dst_repo, digest, &from).await?
        {
            self.note(|r| r.blobs_mounted += 1);
            return Ok(());
        }
        let resp = self.src.get_blob(src_repo, digest).await?;
        let size = resp.content_length().unwrap_or(size);
        let stream = resp.bytes_stream();
        match self.opts.speed_kib {
            Some(kib) => {
                self.dst
                    .push_blob(
                        dst_repo,
                        digest,
                        size,
                        throttle(stream, kib),
                        self.opts.chunk_size,
                    )
                    .await?
            }
            None => {
                self.dst
                    .push_blob(
                        dst_repo,
                        digest,
                        size,
                        Box::pin(stream),
                        self.opts.chunk_size,
                    )
                    .await?
            }
        }
        self.placed
            .lock()
            .expect("placed")
            .insert(digest.to_owned(), dst_repo.to_owned());
        self.note(|r| {
            r.blobs_copied += 1;
            r.bytes_copied += size;
            r.transferred.push(digest.to_owned());
        });
        Ok(())
    }

    /// Copy what refers to `subject`: manifests the referrers API lists,
    /// and the fallback tags `sha256-<hex>` (OCI referrers tag schema) and
    /// `sha256-<hex>.<suffix>` (cosign's signatures, attestations, SBOMs).
    fn copy_accessories<'a>(
        &'a self,
        src_repo: &'a str,
        dst_repo: &'a str,
        subject: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            if let Some(referrers) = self.src.referrers(src_repo, subject).await? {
                for digest in referrers {
                    if self.dst.head_manifest(dst_repo, &digest).await?.is_some() {
                        continue;
                    }
                    if let Some(m) = self.src.get_manifest(src_repo, &digest).await? {
                        self.copy_manifest(src_repo, dst_repo, &m).await?;
                        self.copy_accessories(src_repo, dst_repo, &m.digest).await?;
                    }
                }
            }
            let Some(hex) = subject.strip_prefix("sha256:") else {
                return Ok(());
            };
            let prefix = format!("sha256-{hex}");
            let tags: Vec<String> = self
                .source_tags(src_repo)
                .await?
                .into_iter()
                .filter(|t| {
                    *t == prefix || t.strip_prefix(&prefix).is_some_and(|r| r.starts_with('.'))
                })
                .collect();
            for tag in tags {
                // These tags are indexes of the subject's accessories: the
                // source's current list always wins.
                if let TagOutcome::Copied { digest } | TagOutcome::UpToDate { digest } =
                    self.copy_tag_inner(src_repo, dst_repo, &tag, true).await?
                {
                    tracing::debug!(%tag, %digest, "copied accessory of {subject}");
                }
            }
            Ok(())
        })
    }

    /// Delete `dst_repo:tag` on the destination (replicated deletion).
    /// Distribution servers delete manifests, not tags: the manifest the
    /// tag points at goes. `false` when the tag was not there.
    pub async fn delete_tag(&self, dst_repo: &str, tag: &str) -> Result<bool> {
        match self.dst.head_manifest(dst_repo, tag).await? {
            Some(digest) => self.dst.delete_manifest(dst_repo, &digest).await,
            None => Ok(false),
        }
    }
}

/// Whether `tag` names an accessory of another manifest rather than an artifact.
pub fn is_accessory_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|rest| {
        let hex = rest.split('.').next().unwrap_or_default();
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn descriptor_digest(d: &serde_json::Value) -> Result<String> {
    d.get("digest")
        .and_then(|d| d.as_str())
        .filter(|d| d.starts_with("sha256:") || d.starts_with("sha512:"))
        .map(str::to_owned)
        .ok_or_else(|| ReplicationError::Invalid(format!("descriptor without a valid digest: {d}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessory_tags() {
        let hex = "a".repeat(64);
        assert!(is_accessory_tag(&format!("sha256-{hex}")));
        assert!(is_accessory_tag(&format!("sha256-{hex}.sig")));
        assert!(!is_accessory_tag("sha256-abc.sig"));
        assert!(!is_accessory_tag("v1.0"));
    }
}
