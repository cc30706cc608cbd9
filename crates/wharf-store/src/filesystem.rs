//! Filesystem backend: plain files under a root directory, written with
//! `tokio::fs` (no object-store layer in between).
//!
//! Durability: upload data is appended to `uploads/<uuid>/data` without fsync
//! (a crash may lose the tail of an upload, which the length check on the next
//! append or the digest check at finish catches). At finish the file is
//! fsynced, renamed into `blobs/…` and the directory fsynced, so a blob that is
//! visible has its bytes on disk and never appears half-written.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::fs::{self, File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;
use wharf_oci::{Digest, DigestAlgorithm, DigestHasher};

use crate::layout::{self, UPLOAD_DATA, UPLOADS};
use crate::upload::BackendState;
use crate::{BlobBody, ByteRange, ByteStream, ListedBlob, StoreError, StoredBlob, UploadState};

/// Write buffer for upload data: few large writes instead of one per chunk.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Size of the chunks a blob read yields.
const READ_CHUNK: usize = 1024 * 1024;
/// Bytes of a blob mapped at a time while it is read.
const MAP_WINDOW: usize = 64 * 1024 * 1024;
/// Bytes an upload writes before the kernel is asked to start writing them back.
const WRITEBACK_EVERY: usize = 16 * 1024 * 1024;

/// Blobs and uploads under one directory.
#[derive(Debug)]
pub(crate) struct FilesystemBackend {
    root: PathBuf,
}

fn join(root: &Path, segments: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(segments);
    p
}

fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

/// fsync a directory so a rename or creation inside it survives a crash.
async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).await?.sync_all().await?;
    Ok(())
}

async fn remove_dir_if_present(dir: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(dir).await {
        Err(e) if !is_not_found(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

impl FilesystemBackend {
    /// Use `root`, creating `blobs/` and `uploads/` under it if needed.
    pub(crate) async fn open(root: PathBuf) -> Result<Self, StoreError> {
        fs::create_dir_all(root.join(layout::BLOBS)).await?;
        fs::create_dir_all(root.join(UPLOADS)).await?;
        Ok(Self { root })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        join(&self.root, &layout::blob_segments(digest))
    }

    fn upload_dir(&self, id: Uuid) -> PathBuf {
        join(&self.root, &layout::upload_segments(id))
    }

    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        let probe = self
            .root
            .join(UPLOADS)
            .join(format!(".probe-{}", Uuid::new_v4()));
        let mut f = File::create(&probe).await?;
        f.write_all(b"wharf storage probe").await?;
        f.sync_all().await?;
        drop(f);
        fs::remove_file(&probe).await?;
        fs::metadata(self.root.join(layout::BLOBS)).await?;
        Ok(())
    }

    pub(crate) async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn get(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobBody, StoreError> {
        let path = self.blob_path(digest);
        let opened = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(path)?;
            let size = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, size))
        })
        .await
        .map_err(std::io::Error::other)?;
        let (file, total_size) = match opened {
            Ok(opened) => opened,
            Err(e) if is_not_found(&e) => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let file = std::sync::Arc::new(file);
        let (start, len) = crate::resolve_range(range, total_size)?;
        Ok(BlobBody {
            stream: read_chunks(file, start, len),
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
        if self.stat(digest).await?.is_some() {
            return Ok(StoredBlob {
                digest: digest.clone(),
                size,
            });
        }
        // A temporary upload directory, so a crash leaves something purge removes.
        let dir = self.upload_dir(Uuid::new_v4());
        fs::create_dir_all(&dir).await?;
        let tmp = dir.join(UPLOAD_DATA);
        let result = async {
            let mut f = File::create(&tmp).await?;
            f.write_all(&bytes).await?;
            self.publish(f, &tmp, digest).await
        }
        .await;
        remove_dir_if_present(&dir).await?;
        result?;
        Ok(StoredBlob {
            digest: digest.clone(),
            size,
        })
    }

    /// fsync `file` (at `path`), move it to the blob's place and fsync the directories.
    async fn publish(&self, file: File, path: &Path, digest: &Digest) -> Result<(), StoreError> {
        file.sync_all().await?;
        drop(file);
        let target = self.blob_path(digest);
        let parent = target
            .parent()
            .ok_or_else(|| StoreError::Config("blob path has no parent".into()))?;
        let created = fs::metadata(parent).await.is_err();
        fs::create_dir_all(parent).await?;
        fs::rename(path, &target).await?;
        sync_dir(parent).await?;
        if created {
            // The shard (and maybe the algorithm) directory is new: make its entry durable too.
            let mut dir = parent;
            while let Some(up) = dir.parent() {
                sync_dir(up).await?;
                if up == self.root {
                    break;
                }
                dir = up;
            }
        }
        Ok(())
    }

    pub(crate) async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        match fs::remove_file(self.blob_path(digest)).await {
            Err(e) if !is_not_found(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub(crate) fn list_blobs(
        &self,
    ) -> futures_util::stream::BoxStream<'static, Result<ListedBlob, StoreError>> {
        let root = self.root.join(layout::BLOBS);
        futures_util::stream::once(async move { blob_shards(&root).await })
            .map_ok(|shards| {
                futures_util::stream::iter(shards)
                    .then(|(algorithm, dir)| async move { read_shard(algorithm, &dir).await })
                    .map_ok(|blobs| futures_util::stream::iter(blobs.into_iter().map(Ok)))
                    .try_flatten()
            })
            .try_flatten()
            .boxed()
    }

    pub(crate) async fn begin_upload(
        &self,
        id: Uuid,
        algorithm: DigestAlgorithm,
    ) -> Result<UploadState, StoreError> {
        let dir = self.upload_dir(id);
        fs::create_dir_all(&dir).await?;
        File::create(dir.join(UPLOAD_DATA)).await?;
        Ok(UploadState::fresh(algorithm, &BackendState::Filesystem))
    }

    fn expect_own_state(state: &UploadState) -> Result<(), StoreError> {
        match BackendState::from_json(&state.backend)? {
            BackendState::Filesystem => Ok(()),
            other => Err(StoreError::BadUploadState(format!(
                "state of another backend ({other:?}) given to the filesystem backend"
            ))),
        }
    }

    /// Open the upload's data file cut back to exactly `offset` bytes.
    async fn open_data_at(&self, id: Uuid, offset: u64) -> Result<File, StoreError> {
        let path = self.upload_dir(id).join(UPLOAD_DATA);
        let mut file = match OpenOptions::new().read(true).write(true).open(&path).await {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => {
                return Err(StoreError::BadUploadState(format!(
                    "upload {id} has no data (aborted, purged or finished)"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata().await?.len();
        if len < offset {
            return Err(StoreError::BadUploadState(format!(
                "upload {id} holds {len} bytes but its state says {offset}"
            )));
        }
        if len > offset {
            // Left over from an append that failed after writing.
            file.set_len(offset).await?;
        }
        file.seek(SeekFrom::Start(offset)).await?;
        Ok(file)
    }

    pub(crate) async fn append(
        &self,
        id: Uuid,
        state: UploadState,
        mut body: ByteStream,
    ) -> Result<UploadState, StoreError> {
        Self::expect_own_state(&state)?;
        let hasher = state.hasher()?;
        let file = self.open_data_at(id, state.offset).await?.into_std().await;
        // Hash and write on a blocking thread of its own that pulls the body
        // itself (the body is already a channel fed by the connection's worker),
        // so the worker keeps receiving while earlier chunks are hashed and
        // written: a push uses both cores instead of taking turns on one.
        let runtime = tokio::runtime::Handle::current();
        let writer =
            tokio::task::spawn_blocking(move || -> Result<(DigestHasher, u64), StoreError> {
                use std::io::Write;
                let mut hasher = hasher;
                let mut written = 0u64;
                let mut since_writeback = 0usize;
                let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
                while let Some(chunk) = runtime.block_on(body.next()) {
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            // What arrived is written; the next append cuts it back.
                            out.flush()?;
                            return Err(StoreError::Body(e));
                        }
                    };
                    hasher.update(&chunk);
                    out.write_all(&chunk)?;
                    written += chunk.len() as u64;
                    since_writeback += chunk.len();
                    if since_writeback >= WRITEBACK_EVERY {
                        out.flush()?;
                        start_writeback(out.get_ref());
                        since_writeback = 0;
                    }
                }
                out.flush()?;
                start_writeback(out.get_ref());
                Ok((hasher, written))
            });
        let (hasher, written) = writer.await.map_err(std::io::Error::other)??;
        Ok(state.advanced(state.offset + written, &hasher, &BackendState::Filesystem))
    }

    pub(crate) async fn finish(
        &self,
        id: Uuid,
        state: UploadState,
        expected: &Digest,
    ) -> Result<StoredBlob, StoreError> {
        Self::expect_own_state(&state)?;
        let hasher = state.hasher()?;
        let uploaded_with = hasher.algorithm();
        let dir = self.upload_dir(id);
        let blob = StoredBlob {
            digest: expected.clone(),
            size: state.offset,
        };
        if uploaded_with == expected.algorithm() {
            let actual = hasher.finalize();
            if actual != *expected {
                remove_dir_if_present(&dir).await?;
                return Err(StoreError::mismatch(expected, &actual));
            }
            if self.stat(expected).await?.is_some() {
                // Already stored (another upload, or a retry of this finish).
                remove_dir_if_present(&dir).await?;
                return Ok(blob);
            }
        }
        let mut file = self.open_data_at(id, state.offset).await?;
        if uploaded_with != expected.algorithm() {
            // Uploaded under another algorithm than the one the client names at the
            // end: the saved hash does not help, read the data back.
            file.seek(SeekFrom::Start(0)).await?;
            let actual = hash_reader(&mut file, expected.algorithm()).await?;
            if actual != *expected {
                remove_dir_if_present(&dir).await?;
                return Err(StoreError::mismatch(expected, &actual));
            }
            if self.stat(expected).await?.is_some() {
                remove_dir_if_present(&dir).await?;
                return Ok(blob);
            }
        }
        self.publish(file, &dir.join(UPLOAD_DATA), expected).await?;
        if let Err(e) = remove_dir_if_present(&dir).await {
            tracing::warn!(upload = %id, error = %e, "could not remove a finished upload's directory");
        }
        Ok(blob)
    }

    pub(crate) async fn abort(&self, id: Uuid) -> Result<(), StoreError> {
        remove_dir_if_present(&self.upload_dir(id)).await
    }

    pub(crate) async fn purge_uploads_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0;
        let mut entries = fs::read_dir(self.root.join(UPLOADS)).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            let meta = match entry.metadata().await {
                Ok(m) => m,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            // An upload is active if its directory or its data changed recently.
            let mut last = meta.modified()?;
            if meta.is_dir()
                && let Ok(data) = fs::metadata(path.join(UPLOAD_DATA)).await
            {
                last = last.max(data.modified()?);
            }
            if last >= cutoff {
                continue;
            }
            let result = if meta.is_dir() {
                fs::remove_dir_all(&path).await
            } else {
                fs::remove_file(&path).await
            };
            match result {
                Ok(()) => {
                    if meta.is_dir() {
                        removed += 1;
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }
}

/// Entries of `dir`, or none if it does not exist.
async fn dir_entries(dir: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    let mut entries = match fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        out.push(entry);
    }
    Ok(out)
}

/// The shard directories (`blobs/<alg>/<xx>`) with their algorithm.
async fn blob_shards(blobs: &Path) -> Result<Vec<(DigestAlgorithm, PathBuf)>, StoreError> {
    let mut shards = Vec::new();
    for alg_dir in dir_entries(blobs).await? {
        let Some(algorithm) = alg_dir
            .file_name()
            .to_str()
            .and_then(DigestAlgorithm::parse)
        else {
            continue;
        };
        for shard in dir_entries(&alg_dir.path()).await? {
            if shard.file_type().await.is_ok_and(|t| t.is_dir()) {
                shards.push((algorithm, shard.path()));
            }
        }
    }
    Ok(shards)
}

/// The blobs of one shard directory; files removed meanwhile are left out.
/// One blocking task reads the whole shard: a task per file would cost more
/// than the `stat` itself.
async fn read_shard(algorithm: DigestAlgorithm, dir: &Path) -> Result<Vec<ListedBlob>, StoreError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut blobs = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|hex| Digest::from_parts(algorithm, hex).ok())
            else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => continue,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            blobs.push(ListedBlob {
                digest,
                size: meta.len(),
                modified: meta.modified()?,
            });
        }
        Ok(blobs)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Ask the kernel to start writing the file's dirty pages to disk now, without
/// waiting for it. The upload keeps streaming while the disk works, so the
/// fsync that makes the finished blob durable has little left to do.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is valid for the duration of the call (borrowed
    // from a live File) and sync_file_range touches no memory of ours.
    // Only a hint: durability comes from the fsync at finish, so a failure here
    // (e.g. a filesystem without support) changes nothing.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File) {}

/// Stream `len` bytes of `file` from `start`.
///
/// The file is memory-mapped a window at a time, and the window is populated
/// on the blocking pool, so the bytes reach the socket with one copy (into the
/// connection's write buffer) instead of two, and the connection's worker never
/// waits on the disk. No thread is held between windows: a slow client costs
/// memory for one window, not a thread.
fn read_chunks(
    file: std::sync::Arc<std::fs::File>,
    start: u64,
    len: u64,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, StoreError>> {
    let windows = futures_util::stream::try_unfold(
        (file, start, start + len),
        |(file, pos, end)| async move {
            if pos >= end {
                return Ok(None);
            }
            let n = (end - pos).min(MAP_WINDOW as u64);
            let mapper = file.clone();
            let window = tokio::task::spawn_blocking(move || map_window(&mapper, pos, n))
                .await
                .map_err(std::io::Error::other)??;
            Ok::<_, StoreError>(Some((window, (file, pos + n, end))))
        },
    );
    windows
        .map_ok(|window| {
            let len = window.len();
            futures_util::stream::iter(
                (0..len)
                    .step_by(READ_CHUNK)
                    .map(move |at| Ok(window.slice(at..(at + READ_CHUNK).min(len)))),
            )
        })
        .try_flatten()
        .boxed()
}

/// Map `len` (> 0) bytes of `file` at `offset`, with every page present.
#[allow(unsafe_code)]
fn map_window(file: &std::fs::File, offset: u64, len: u64) -> std::io::Result<Bytes> {
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a mapping is only unsound if the file changes underneath it.
    // Published blobs never do: each is written to a temporary file, fsynced,
    // renamed into place and never opened for writing again; deleting a blob
    // unlinks it, which leaves existing mappings intact.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .populate()
            .map(file)?
    };
    if map.len() != len {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "blob shorter than recorded",
        ));
    }
    Ok(Bytes::from_owner(map))
}

/// Digest of everything `reader` yields.
async fn hash_reader<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
    algorithm: DigestAlgorithm,
) -> Result<Digest, StoreError> {
    let mut hasher = DigestHasher::new(algorithm);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}
