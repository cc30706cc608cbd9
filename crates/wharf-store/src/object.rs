//! Object-store backend (S3, or memory for tests) through `object_store`.
//!
//! Uploads map onto one multipart upload per blob, driven through the
//! low-level [`MultipartStore`] API so that its id and part ETags can travel in
//! the [`UploadState`] to another process.
//!
//! S3 wants every part but the last to be at least 5 MiB, while clients send
//! chunks of any size. Bytes are therefore cut into parts of exactly
//! [`PART_SIZE`]; what is left at the end of an `append` is stored as a small
//! tail object (`uploads/<uuid>/tail-<offset>`) that the next `append` reads
//! back and continues, and that `finish` puts as the last part. Memory use is at
//! most one part per running append, whatever the blob size.
//!
//! `finish` completes the multipart upload to `uploads/<uuid>/data`, copies it
//! server-side to `blobs/…` and deletes the upload object. An upload that
//! never filled a part is small enough to be put directly.
//!
//! Multipart uploads cannot be listed portably, so an upload the registry
//! forgets without calling `abort` leaves its parts behind until a bucket
//! lifecycle rule ("abort incomplete multipart uploads after N days") cleans
//! them up.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use uuid::Uuid;
use wharf_oci::{Digest, DigestAlgorithm, DigestHasher};

use crate::layout::{self, UPLOAD_DATA, UPLOADS};
use crate::upload::{BackendState, ObjectUpload};
use crate::{BlobBody, ByteRange, ByteStream, ListedBlob, StoreError, StoredBlob, UploadState};

/// Size of every multipart part but the last.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's minimum size of a part that is not the last.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const _: () = assert!(PART_SIZE >= MIN_PART_SIZE);
/// S3 allows part numbers 1..=10000.
const MAX_PARTS: usize = 10_000;

/// An object store that also offers the low-level multipart API.
pub(crate) struct ObjectBackend {
    name: &'static str,
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    prefix: Path,
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// Bytes waiting to become a part, kept as the chunks they arrived in.
#[derive(Default)]
struct PartBuffer {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl PartBuffer {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Remove the first `n` bytes (`n <= len`) as a payload, without copying.
    fn take(&mut self, n: usize) -> PutPayload {
        let mut out = Vec::new();
        let mut missing = n;
        while missing > 0 {
            let Some(mut chunk) = self.chunks.pop_front() else {
                break;
            };
            if chunk.len() > missing {
                let rest = chunk.split_off(missing);
                self.chunks.push_front(rest);
            }
            missing -= chunk.len();
            out.push(chunk);
        }
        self.len -= n - missing;
        out.into_iter().collect()
    }

    fn take_all(&mut self) -> PutPayload {
        self.take(self.len)
    }
}

impl ObjectBackend {
    fn new<S: ObjectStore + MultipartStore>(name: &'static str, store: S, prefix: Path) -> Self {
        let store = Arc::new(store);
        Self {
            name,
            store: store.clone(),
            multipart: store,
            prefix,
        }
    }

    /// Process-memory store, for tests.
    pub(crate) fn memory() -> Self {
        Self::new("memory", InMemory::new(), Path::default())
    }

    /// An S3 bucket.
    pub(crate) fn s3(config: &crate::S3Config) -> Result<Self, StoreError> {
        let prefix = config.prefix_path()?;
        Ok(Self::new("s3", config.build()?, prefix))
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    fn key<S: AsRef<str>>(&self, segments: &[S]) -> Path {
        let mut p = self.prefix.clone();
        p.extend(segments.iter().map(|s| s.as_ref()));
        p
    }

    fn blob_key(&self, digest: &Digest) -> Path {
        self.key(&layout::blob_segments(digest))
    }

    fn upload_key(&self, id: Uuid, name: &str) -> Path {
        let [uploads, id] = layout::upload_segments(id);
        self.key(&[uploads.as_str(), id.as_str(), name])
    }

    async fn exists(&self, key: &Path) -> Result<Option<u64>, StoreError> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_if_present(&self, key: &Path) -> Result<(), StoreError> {
        match self.store.delete(key).await {
            Err(e) if !is_not_found(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        let probe = self.key(&["health", &format!("probe-{}", Uuid::new_v4())]);
        self.store
            .put(&probe, PutPayload::from_static(b"wharf storage probe"))
            .await?;
        self.store.delete(&probe).await?;
        Ok(())
    }

    pub(crate) async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.exists(&self.blob_key(digest)).await
    }

    pub(crate) async fn get(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobBody, StoreError> {
        let key = self.blob_key(digest);
        if let Some(r) = range
            && r.start > r.end_inclusive
        {
            let size = self.exists(&key).await?.ok_or(StoreError::NotFound)?;
            return Err(StoreError::RangeNotSatisfiable { size });
        }
        let options = GetOptions::new().with_range(
            range.map(|r| GetRange::Bounded(r.start..r.end_inclusive.saturating_add(1))),
        );
        let result = match self.store.get_opts(&key, options).await {
            Ok(result) => result,
            Err(e) if is_not_found(&e) => return Err(StoreError::NotFound),
            Err(e) => {
                // Stores reject ranges past the end in their own words; say it in ours.
                if let Some(r) = range {
                    let size = self.exists(&key).await?.ok_or(StoreError::NotFound)?;
                    crate::resolve_range(Some(r), size)?;
                }
                return Err(e.into());
            }
        };
        let total_size = result.meta.size;
        let len = result.range.end.saturating_sub(result.range.start);
        let stream = result.into_stream().map_err(StoreError::from).boxed();
        Ok(BlobBody {
            stream,
            len,
            total_size,
        })
    }

    pub(crate) async fn put_verified(
        &self,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<StoredBlob, StoreError> {
        // The caller (`BlobStore::put_verified`) has checked the digest.
        let size = bytes.len() as u64;
        let key = self.blob_key(digest);
        if self.exists(&key).await?.is_none() {
            // A single PUT is atomic: readers see the whole object or none.
            self.store.put(&key, bytes.into()).await?;
        }
        Ok(StoredBlob {
            digest: digest.clone(),
            size,
        })
    }

    pub(crate) async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        self.delete_if_present(&self.blob_key(digest)).await
    }

    pub(crate) fn list_blobs(
        &self,
    ) -> futures_util::stream::BoxStream<'static, Result<ListedBlob, StoreError>> {
        let blobs = self.key(&[layout::BLOBS]);
        let listing = self.store.list(Some(&blobs));
        listing
            .map_err(StoreError::from)
            .try_filter_map(move |meta| {
                // `blobs/<alg>/<xx>/<hex>`: anything else under the prefix is not a blob.
                let parts: Vec<String> = meta
                    .location
                    .prefix_match(&blobs)
                    .map(|rest| rest.map(|p| p.as_ref().to_owned()).collect())
                    .unwrap_or_default();
                let digest = match parts.as_slice() {
                    [algorithm, _, hex] => DigestAlgorithm::parse(algorithm)
                        .and_then(|a| Digest::from_parts(a, hex).ok()),
                    _ => None,
                };
                std::future::ready(Ok(digest.map(|digest| ListedBlob {
                    digest,
                    size: meta.size,
                    modified: SystemTime::from(meta.last_modified),
                })))
            })
            .boxed()
    }

    pub(crate) fn begin_upload(&self, algorithm: DigestAlgorithm) -> UploadState {
        // Nothing to create yet: the multipart upload starts with the first full part.
        UploadState::fresh(algorithm, &BackendState::Object(ObjectUpload::default()))
    }

    fn own_state(state: &UploadState) -> Result<ObjectUpload, StoreError> {
        match BackendState::from_json(&state.backend)? {
            BackendState::Object(upload) => {
                if upload.tail_len > state.offset || upload.tail_len > PART_SIZE as u64 {
                    return Err(StoreError::BadUploadState(format!(
                        "tail of {} bytes does not fit the upload",
                        upload.tail_len
                    )));
                }
                Ok(upload)
            }
            other => Err(StoreError::BadUploadState(format!(
                "state of another backend ({other:?}) given to the object-store backend"
            ))),
        }
    }

    /// The tail object of an upload whose state ends at `offset`, checked against its recorded length.
    async fn read_tail(&self, id: Uuid, offset: u64, tail_len: u64) -> Result<Bytes, StoreError> {
        if tail_len == 0 {
            return Ok(Bytes::new());
        }
        let key = self.upload_key(id, &layout::tail_name(offset));
        let bytes = match self.store.get(&key).await {
            Ok(r) => r.bytes().await?,
            Err(e) if is_not_found(&e) => {
                return Err(StoreError::BadUploadState(format!(
                    "upload {id} has lost its pending bytes (aborted, purged, or a newer state exists)"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if bytes.len() as u64 != tail_len {
            return Err(StoreError::BadUploadState(format!(
                "upload {id} has {} pending bytes, its state says {tail_len}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Put the next part, starting the multipart upload if this is the first.
    async fn put_part(
        &self,
        id: Uuid,
        upload: &mut ObjectUpload,
        payload: PutPayload,
    ) -> Result<(), StoreError> {
        let data = self.upload_key(id, UPLOAD_DATA);
        if upload.parts.len() >= MAX_PARTS {
            return Err(StoreError::Config(format!(
                "blob exceeds {MAX_PARTS} parts of {PART_SIZE} bytes, the most S3 can assemble"
            )));
        }
        let multipart_id = match &upload.multipart_id {
            Some(mid) => mid.clone(),
            None => {
                let mid = self.multipart.create_multipart(&data).await?;
                upload.multipart_id = Some(mid.clone());
                mid
            }
        };
        let part = self
            .multipart
            .put_part(&data, &multipart_id, upload.parts.len(), payload)
            .await?;
        upload.parts.push(part.content_id);
        Ok(())
    }

    pub(crate) async fn append(
        &self,
        id: Uuid,
        state: UploadState,
        mut body: ByteStream,
    ) -> Result<UploadState, StoreError> {
        let before = Self::own_state(&state)?;
        let mut hasher = state.hasher()?;
        let mut upload = before.clone();
        let mut pending = PartBuffer::default();
        pending.push(self.read_tail(id, state.offset, before.tail_len).await?);
        let mut offset = state.offset;

        let streamed: Result<(), StoreError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StoreError::Body)?;
                hasher.update(&chunk);
                offset += chunk.len() as u64;
                pending.push(chunk);
                while pending.len >= PART_SIZE {
                    let part = pending.take(PART_SIZE);
                    self.put_part(id, &mut upload, part).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            // The caller keeps the old state. A multipart upload started by this
            // call is known to no state: abort it rather than leak it.
            if before.multipart_id.is_none()
                && let Some(mid) = &upload.multipart_id
                && let Err(abort_err) = self
                    .multipart
                    .abort_multipart(&self.upload_key(id, UPLOAD_DATA), mid)
                    .await
            {
                tracing::warn!(upload = %id, error = %abort_err, "could not abort a multipart upload after a failed append");
            }
            return Err(e);
        }
        if offset == state.offset {
            return Ok(state);
        }

        upload.tail_len = pending.len as u64;
        if pending.len > 0 {
            let key = self.upload_key(id, &layout::tail_name(offset));
            self.store.put(&key, pending.take_all()).await?;
        }
        if before.tail_len > 0 {
            // The old tail is now inside a part or the new tail.
            let old = self.upload_key(id, &layout::tail_name(state.offset));
            if let Err(e) = self.delete_if_present(&old).await {
                tracing::warn!(upload = %id, error = %e, "could not delete a superseded upload tail");
            }
        }
        Ok(state.advanced(offset, &hasher, &BackendState::Object(upload)))
    }

    pub(crate) async fn finish(
        &self,
        id: Uuid,
        state: UploadState,
        expected: &Digest,
    ) -> Result<StoredBlob, StoreError> {
        let upload = Self::own_state(&state)?;
        let hasher = state.hasher()?;
        let blob_key = self.blob_key(expected);
        let blob = StoredBlob {
            digest: expected.clone(),
            size: state.offset,
        };
        let same_algorithm = hasher.algorithm() == expected.algorithm();
        if same_algorithm {
            let actual = hasher.finalize();
            if actual != *expected {
                self.discard(id, state.offset, &upload).await?;
                return Err(StoreError::mismatch(expected, &actual));
            }
            if self.exists(&blob_key).await?.is_some() {
                self.discard(id, state.offset, &upload).await?;
                return Ok(blob);
            }
        }

        let Some(multipart_id) = &upload.multipart_id else {
            // Never filled a part: the whole blob is the tail (at most one part).
            let bytes = self.read_tail(id, state.offset, upload.tail_len).await?;
            if !same_algorithm {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if actual != *expected {
                    self.discard(id, state.offset, &upload).await?;
                    return Err(StoreError::mismatch(expected, &actual));
                }
            }
            self.store.put(&blob_key, bytes.into()).await?;
            self.cleanup(id, state.offset, &upload).await;
            return Ok(blob);
        };

        let data = self.upload_key(id, UPLOAD_DATA);
        // A retried finish may find the multipart upload already completed.
        if self.exists(&data).await? != Some(state.offset) {
            let mut parts: Vec<PartId> = upload
                .parts
                .iter()
                .map(|content_id| PartId {
                    content_id: content_id.clone(),
                })
                .collect();
            if upload.tail_len > 0 {
                let tail = self.read_tail(id, state.offset, upload.tail_len).await?;
                let part = self
                    .multipart
                    .put_part(&data, multipart_id, parts.len(), tail.into())
                    .await?;
                parts.push(part);
            }
            self.multipart
                .complete_multipart(&data, multipart_id, parts)
                .await?;
        }
        if !same_algorithm {
            let actual = self.hash_object(&data, expected.algorithm()).await?;
            if actual != *expected {
                let completed = ObjectUpload {
                    multipart_id: None,
                    ..upload
                };
                self.discard(id, state.offset, &completed).await?;
                return Err(StoreError::mismatch(expected, &actual));
            }
        }
        if self.exists(&blob_key).await?.is_none() {
            self.store.copy(&data, &blob_key).await?;
        }
        self.cleanup(id, state.offset, &upload).await;
        Ok(blob)
    }

    /// Digest of an object's content, read as a stream.
    async fn hash_object(
        &self,
        key: &Path,
        algorithm: DigestAlgorithm,
    ) -> Result<Digest, StoreError> {
        let mut hasher = DigestHasher::new(algorithm);
        let mut stream = self.store.get(key).await?.into_stream();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(hasher.finalize())
    }

    /// Remove what is left of a finished upload; failures only leave garbage
    /// for the purge, so they are logged, not returned.
    async fn cleanup(&self, id: Uuid, offset: u64, upload: &ObjectUpload) {
        if let Err(e) = self.remove_upload_objects(id, offset, upload).await {
            tracing::warn!(upload = %id, error = %e, "could not remove a finished upload's objects");
        }
    }

    /// Remove everything of an unfinished upload, including its multipart upload.
    async fn discard(
        &self,
        id: Uuid,
        offset: u64,
        upload: &ObjectUpload,
    ) -> Result<(), StoreError> {
        let mut first_error = None;
        if let Some(mid) = &upload.multipart_id {
            let data = self.upload_key(id, UPLOAD_DATA);
            if let Err(e) = self.multipart.abort_multipart(&data, mid).await
                && !is_not_found(&e)
                // A finish that failed after completing the upload left it as an object.
                && self.exists(&data).await?.is_none()
            {
                tracing::warn!(upload = %id, error = %e, "could not abort a multipart upload");
                first_error = Some(StoreError::from(e));
            }
        }
        if let Err(e) = self.remove_upload_objects(id, offset, upload).await {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Delete the upload's data and tail objects and anything else under its prefix.
    async fn remove_upload_objects(
        &self,
        id: Uuid,
        offset: u64,
        upload: &ObjectUpload,
    ) -> Result<(), StoreError> {
        self.delete_if_present(&self.upload_key(id, UPLOAD_DATA))
            .await?;
        if upload.tail_len > 0 {
            self.delete_if_present(&self.upload_key(id, &layout::tail_name(offset)))
                .await?;
        }
        // Tails of states the caller no longer holds (a failed save, say).
        let [uploads, id_segment] = layout::upload_segments(id);
        let dir = self.key(&[uploads, id_segment]);
        let leftovers: Vec<Path> = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for key in leftovers {
            self.delete_if_present(&key).await?;
        }
        Ok(())
    }

    pub(crate) async fn abort(&self, id: Uuid, state: &UploadState) -> Result<(), StoreError> {
        // Be lenient with the state: whatever it says, remove what can be found.
        let upload = match BackendState::from_json(&state.backend) {
            Ok(BackendState::Object(upload)) => upload,
            _ => ObjectUpload::default(),
        };
        self.discard(id, state.offset, &upload).await
    }

    pub(crate) async fn purge_uploads_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let uploads = self.key(&[UPLOADS]);
        let old: Vec<Path> = self
            .store
            .list(Some(&uploads))
            .try_filter(|meta| std::future::ready(SystemTime::from(meta.last_modified) < cutoff))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        let mut purged = HashSet::new();
        for key in old {
            self.delete_if_present(&key).await?;
            if let Some(upload) = key.prefix_match(&uploads).and_then(|mut rest| rest.next()) {
                purged.insert(upload.as_ref().to_owned());
            }
        }
        Ok(purged.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_buffer_cuts_exact_parts_without_losing_bytes() {
        let mut buf = PartBuffer::default();
        buf.push(Bytes::from_static(b"abc"));
        buf.push(Bytes::new());
        buf.push(Bytes::from_static(b"defgh"));
        let first: Vec<u8> = buf.take(4).into_iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(first, b"abcd");
        assert_eq!(buf.len, 4);
        let rest: Vec<u8> = buf
            .take_all()
            .into_iter()
            .flat_map(|b| b.to_vec())
            .collect();
        assert_eq!(rest, b"efgh");
        assert_eq!(buf.len, 0);
    }
}
