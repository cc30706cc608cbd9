//! The blob store's promises, checked against every backend: the filesystem
//! (temporary directory), memory, and S3 when a server is configured.
//!
//! S3: set `WHARF_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:9000`) and optionally
//! `WHARF_TEST_S3_BUCKET` (default `wharf-test`, must exist), `AWS_ACCESS_KEY_ID`
//! / `AWS_SECRET_ACCESS_KEY` (default `test` / `testtest`). Without the endpoint
//! the S3 tests say they were skipped, unless `WHARF_REQUIRE_S3=1` (CI), which
//! makes them fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use uuid::Uuid;
use wharf_oci::{Digest, DigestAlgorithm};
use wharf_store::{
    BlobStore, ByteRange, ByteStream, PART_SIZE, S3Config, StorageConfig, StoreError, StoredBlob,
    UploadState,
};

/// A store under test, and how to open it again "in another process".
struct Fixture {
    store: BlobStore,
    config: Option<StorageConfig>,
    root: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    async fn filesystem() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("storage");
        let config = StorageConfig::Filesystem { root: root.clone() };
        let store = BlobStore::from_config(&config)
            .await
            .expect("open filesystem store");
        assert_eq!(store.backend_name(), "filesystem");
        Some(Self {
            store,
            config: Some(config),
            root: Some(root),
            _dir: Some(dir),
        })
    }

    async fn memory() -> Option<Self> {
        let store = BlobStore::memory();
        assert_eq!(store.backend_name(), "memory");
        Some(Self {
            store,
            config: None,
            root: None,
            _dir: None,
        })
    }

    async fn s3() -> Option<Self> {
        let Ok(endpoint) = std::env::var("WHARF_TEST_S3_ENDPOINT") else {
            if std::env::var("WHARF_REQUIRE_S3").as_deref() == Ok("1") {
                panic!("WHARF_REQUIRE_S3=1 but WHARF_TEST_S3_ENDPOINT is not set");
            }
            eprintln!("skipped: set WHARF_TEST_S3_ENDPOINT to run the S3 tests");
            return None;
        };
        let env_or = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        let config = StorageConfig::S3(S3Config {
            bucket: env_or("WHARF_TEST_S3_BUCKET", "wharf-test"),
            region: Some(env_or("AWS_REGION", "us-east-1")),
            endpoint: Some(endpoint),
            path_style: true,
            allow_http: true,
            access_key_id: Some(env_or("AWS_ACCESS_KEY_ID", "test")),
            secret_access_key: Some(env_or("AWS_SECRET_ACCESS_KEY", "testtest")),
            session_token: None,
            // Each test gets its own corner of the bucket.
            prefix: Some(format!("wharf-test-{}", Uuid::new_v4())),
        });
        let store = BlobStore::from_config(&config)
            .await
            .expect("open S3 store");
        assert_eq!(store.backend_name(), "s3");
        store
            .check()
            .await
            .expect("S3 store reachable (does the bucket exist?)");
        Some(Self {
            store,
            config: Some(config),
            root: None,
            _dir: None,
        })
    }

    /// The same storage opened afresh, as another replica would.
    async fn other_process(&self) -> BlobStore {
        match &self.config {
            Some(config) => BlobStore::from_config(config).await.expect("reopen store"),
            None => self.store.clone(),
        }
    }

    /// Files under `<root>/blobs` (filesystem only; empty otherwise).
    fn blob_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.push(p)
                }
            }
        }
        let mut out = Vec::new();
        if let Some(root) = &self.root {
            walk(&root.join("blobs"), &mut out);
        }
        out
    }
}

/// Deterministic, incompressible-looking bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest::of(DigestAlgorithm::Sha256, bytes)
}

fn body_of(bytes: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks).boxed()
}

/// A body that delivers `bytes` and then fails, like a client that hung up.
fn broken_body(bytes: &[u8], chunk: usize) -> ByteStream {
    let failure = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away");
    body_of(bytes, chunk)
        .chain(stream::iter([Err(failure)]))
        .boxed()
}

/// What the registry does between calls: JSON into Postgres and back.
fn via_database(state: &UploadState) -> UploadState {
    let json = serde_json::to_string(state).expect("state serializes");
    serde_json::from_str(&json).expect("state deserializes")
}

async fn read(store: &BlobStore, digest: &Digest, range: Option<ByteRange>) -> Vec<u8> {
    let body = store.get(digest, range).await.expect("get blob");
    let bytes: Vec<Bytes> = body.stream.try_collect().await.expect("read blob stream");
    let bytes = bytes.concat();
    assert_eq!(
        bytes.len() as u64,
        body.len,
        "stream yields exactly len bytes"
    );
    bytes
}

fn range(start: u64, end_inclusive: u64) -> Option<ByteRange> {
    Some(ByteRange {
        start,
        end_inclusive,
    })
}

/// Push `bytes` in appends of `append_size`, each through JSON and (when the
/// backend allows) a freshly opened store.
async fn push_chunked(
    f: &Fixture,
    bytes: &[u8],
    append_size: usize,
    digest: &Digest,
) -> StoredBlob {
    let id = Uuid::new_v4();
    let mut state = f
        .store
        .begin_upload(id, digest.algorithm())
        .await
        .expect("begin");
    for (i, part) in bytes.chunks(append_size).enumerate() {
        let store = if i % 7 == 3 {
            f.other_process().await
        } else {
            f.store.clone()
        };
        state = store
            .append(id, via_database(&state), body_of(part, 64 * 1024))
            .await
            .expect("append");
    }
    assert_eq!(state.offset, bytes.len() as u64);
    f.other_process()
        .await
        .finish(id, via_database(&state), digest)
        .await
        .expect("finish")
}

mod scenarios {
    use super::*;

    pub async fn monolithic_put(f: &Fixture) {
        let s = &f.store;
        let manifest = br#"{"schemaVersion":2}"#.to_vec();
        let d = sha256(&manifest);
        assert_eq!(s.stat(&d).await.unwrap(), None);
        assert!(matches!(s.get(&d, None).await, Err(StoreError::NotFound)));

        let blob = s
            .put_verified(&d, Bytes::from(manifest.clone()))
            .await
            .unwrap();
        assert_eq!(
            blob,
            StoredBlob {
                digest: d.clone(),
                size: manifest.len() as u64
            }
        );
        assert_eq!(s.stat(&d).await.unwrap(), Some(manifest.len() as u64));
        assert_eq!(read(s, &d, None).await, manifest);
        // Idempotent.
        s.put_verified(&d, Bytes::from(manifest.clone()))
            .await
            .unwrap();

        // Wrong bytes for the digest: rejected, nothing written.
        let other = sha256(b"other");
        let err = s
            .put_verified(&other, Bytes::from_static(b"not other"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err:?}");
        assert_eq!(s.stat(&other).await.unwrap(), None);

        if let Some(root) = &f.root {
            let hex = d.hex();
            let expected = root.join("blobs/sha256").join(&hex[..2]).join(hex);
            assert_eq!(f.blob_files(), vec![expected]);
        }

        s.delete(&d).await.unwrap();
        assert_eq!(s.stat(&d).await.unwrap(), None);
        s.delete(&d).await.expect("deleting a missing blob is fine");
        s.check().await.expect("health check");
    }

    pub async fn chunked_upload_resumes_from_saved_state(f: &Fixture) {
        let bytes = data(300_001, 1);
        let d = sha256(&bytes);
        let blob = push_chunked(f, &bytes, 40_000, &d).await;
        assert_eq!(blob.size, bytes.len() as u64);
        assert_eq!(f.store.stat(&d).await.unwrap(), Some(bytes.len() as u64));
        assert_eq!(read(&f.other_process().await, &d, None).await, bytes);
    }

    pub async fn digest_mismatch_leaves_nothing_visible(f: &Fixture) {
        let bytes = data(100_000, 2);
        let claimed = sha256(b"something else entirely");
        let actual = sha256(&bytes);
        let id = Uuid::new_v4();
        let st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        let st = f
            .store
            .append(id, st, body_of(&bytes, 10_000))
            .await
            .unwrap();
        let err = f.store.finish(id, st.clone(), &claimed).await.unwrap_err();
        match err {
            StoreError::DigestMismatch {
                expected,
                actual: got,
            } => {
                assert_eq!(expected, claimed.to_string());
                assert_eq!(got, actual.to_string());
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
        assert_eq!(f.store.stat(&claimed).await.unwrap(), None);
        assert_eq!(f.store.stat(&actual).await.unwrap(), None);
        assert!(f.blob_files().is_empty(), "{:?}", f.blob_files());
        // The upload's data is gone too.
        let again = f.store.append(id, st, body_of(b"more", 4)).await;
        assert!(
            matches!(again, Err(StoreError::BadUploadState(_))),
            "{again:?}"
        );
    }

    pub async fn ranged_reads(f: &Fixture) {
        let bytes = data(1_000_000, 3);
        let d = sha256(&bytes);
        f.store
            .put_verified(&d, Bytes::from(bytes.clone()))
            .await
            .unwrap();
        assert_eq!(read(&f.store, &d, range(0, 0)).await, bytes[..1]);
        assert_eq!(read(&f.store, &d, range(10, 19)).await, bytes[10..20]);
        assert_eq!(
            read(&f.store, &d, range(300_000, 700_123)).await,
            bytes[300_000..=700_123]
        );
        assert_eq!(
            read(&f.store, &d, range(999_999, 999_999)).await,
            bytes[999_999..]
        );
        // An end past the blob is clamped.
        assert_eq!(
            read(&f.store, &d, range(999_000, 5_000_000)).await,
            bytes[999_000..]
        );
        let body = f.store.get(&d, range(5, 9)).await.unwrap();
        assert_eq!((body.len, body.total_size), (5, 1_000_000));

        for bad in [
            range(1_000_000, 1_000_001),
            range(2_000_000, 3_000_000),
            range(10, 9),
        ] {
            let err = f.store.get(&d, bad).await.err();
            assert!(
                matches!(
                    err,
                    Some(StoreError::RangeNotSatisfiable { size: 1_000_000 })
                ),
                "{bad:?}: {err:?}"
            );
        }
        let missing = sha256(b"missing");
        assert!(matches!(
            f.store.get(&missing, range(0, 1)).await,
            Err(StoreError::NotFound)
        ));
    }

    pub async fn interrupted_append_is_retried_from_saved_state(f: &Fixture) {
        // Sizes chosen so the failed append crosses a part boundary on object stores.
        let first = data(3 * 1024 * 1024 + 17, 4);
        let second = data(PART_SIZE + 1_000_003, 5);
        let whole = [first.clone(), second.clone()].concat();
        let d = sha256(&whole);
        let id = Uuid::new_v4();
        let st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        let st = f
            .store
            .append(id, st, body_of(&first, 64 * 1024))
            .await
            .unwrap();
        let saved = via_database(&st);

        let cut = PART_SIZE; // well past the part boundary, before the end
        let err = f
            .store
            .append(id, saved.clone(), broken_body(&second[..cut], 64 * 1024))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Body(_)), "{err:?}");

        // The client retries the whole chunk from the last acknowledged offset.
        let other = f.other_process().await;
        let st = other
            .append(id, saved, body_of(&second, 100 * 1024))
            .await
            .unwrap();
        assert_eq!(st.offset, whole.len() as u64);
        let blob = other.finish(id, via_database(&st), &d).await.unwrap();
        assert_eq!(blob.size, whole.len() as u64);
        assert_eq!(read(&f.store, &d, None).await, whole);
    }

    pub async fn abort_discards_everything(f: &Fixture) {
        let bytes = data(50_000, 6);
        let id = Uuid::new_v4();
        let st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        let st = f
            .store
            .append(id, st, body_of(&bytes, 8_000))
            .await
            .unwrap();
        f.store.abort(id, st.clone()).await.unwrap();
        f.store
            .abort(id, st.clone())
            .await
            .expect("aborting twice is fine");
        let err = f.store.append(id, st.clone(), body_of(b"x", 1)).await;
        assert!(matches!(err, Err(StoreError::BadUploadState(_))), "{err:?}");
        let err = f.store.finish(id, st, &sha256(&bytes)).await;
        assert!(matches!(err, Err(StoreError::BadUploadState(_))), "{err:?}");
        assert_eq!(f.store.stat(&sha256(&bytes)).await.unwrap(), None);
        if let Some(root) = &f.root {
            assert!(!root.join("uploads").join(id.to_string()).exists());
        }
    }

    pub async fn purge_removes_only_stale_uploads(f: &Fixture) {
        let id = Uuid::new_v4();
        let st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        let st = f
            .store
            .append(id, st, body_of(b"stale bytes", 4))
            .await
            .unwrap();
        assert_eq!(
            f.store
                .purge_uploads_older_than(Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        // Still usable after a purge that did not concern it.
        let st = f.store.append(id, st, body_of(b"!", 1)).await.unwrap();

        // S3 reports modification times in whole seconds: keep well clear of them.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let fresh = Uuid::new_v4();
        let fresh_st = f
            .store
            .begin_upload(fresh, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        let fresh_st = f
            .store
            .append(fresh, fresh_st, body_of(b"fresh", 5))
            .await
            .unwrap();

        let removed = f
            .store
            .purge_uploads_older_than(Duration::from_millis(1_500))
            .await
            .unwrap();
        assert_eq!(removed, 1);
        let err = f.store.append(id, st, body_of(b"late", 4)).await;
        assert!(matches!(err, Err(StoreError::BadUploadState(_))), "{err:?}");
        let blob = f
            .store
            .finish(fresh, fresh_st, &sha256(b"fresh"))
            .await
            .unwrap();
        assert_eq!(blob.size, 5);
    }

    pub async fn sha512_uploads(f: &Fixture) {
        let bytes = data(70_000, 7);
        let d = Digest::of(DigestAlgorithm::Sha512, &bytes);
        let blob = push_chunked(f, &bytes, 9_999, &d).await;
        assert_eq!(blob.digest.algorithm(), DigestAlgorithm::Sha512);
        assert_eq!(read(&f.store, &d, range(5, 9)).await, bytes[5..10]);
        if let Some(root) = &f.root {
            assert!(
                root.join("blobs/sha512")
                    .join(&d.hex()[..2])
                    .join(d.hex())
                    .is_file()
            );
        }
        // put_verified with sha512 too.
        let small = Digest::of(DigestAlgorithm::Sha512, b"manifest");
        f.store
            .put_verified(&small, Bytes::from_static(b"manifest"))
            .await
            .unwrap();
        assert_eq!(f.store.stat(&small).await.unwrap(), Some(8));
    }

    pub async fn digest_algorithm_named_only_at_the_end(f: &Fixture) {
        // Hashed as sha256 while streaming, but the client closes with a sha512 digest.
        for size in [1_000, PART_SIZE + 4_321] {
            let bytes = data(size, 8);
            let wrong = Digest::of(DigestAlgorithm::Sha512, b"nope");
            let id = Uuid::new_v4();
            let st = f
                .store
                .begin_upload(id, DigestAlgorithm::Sha256)
                .await
                .unwrap();
            let st = f
                .store
                .append(id, st, body_of(&bytes, 256 * 1024))
                .await
                .unwrap();
            let err = f.store.finish(id, st, &wrong).await.unwrap_err();
            assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err:?}");
            assert_eq!(f.store.stat(&wrong).await.unwrap(), None);

            let right = Digest::of(DigestAlgorithm::Sha512, &bytes);
            let id = Uuid::new_v4();
            let st = f
                .store
                .begin_upload(id, DigestAlgorithm::Sha256)
                .await
                .unwrap();
            let st = f
                .store
                .append(id, st, body_of(&bytes, 256 * 1024))
                .await
                .unwrap();
            f.store.finish(id, st, &right).await.unwrap();
            assert_eq!(f.store.stat(&right).await.unwrap(), Some(size as u64));
        }
    }

    pub async fn empty_blob_and_repeated_finish(f: &Fixture) {
        let empty = sha256(b"");
        let id = Uuid::new_v4();
        let st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        let st = f.store.append(id, st, body_of(b"", 1)).await.unwrap();
        assert_eq!(st.offset, 0);
        let blob = f.store.finish(id, st.clone(), &empty).await.unwrap();
        assert_eq!(blob.size, 0);
        assert_eq!(read(&f.store, &empty, None).await, b"");
        let err = f.store.get(&empty, range(0, 0)).await.err();
        assert!(
            matches!(err, Some(StoreError::RangeNotSatisfiable { size: 0 })),
            "{err:?}"
        );
        // A retried finish (say the response was lost) succeeds again.
        f.store
            .finish(id, st, &empty)
            .await
            .expect("finish is retryable");

        // Two uploads of the same content: the second just drops its data.
        let bytes = data(20_000, 9);
        let d = sha256(&bytes);
        push_chunked(f, &bytes, 5_000, &d).await;
        push_chunked(f, &bytes, 7_000, &d).await;
        assert_eq!(read(&f.store, &d, None).await, bytes);
    }

    /// The registry failed to save the state of a successful append, and the
    /// client retries from the older state with other bytes: the result is either
    /// a clean refusal or exactly the retried bytes, never a mix.
    pub async fn stale_state_never_mixes_contents(f: &Fixture) {
        let a = data(1_000, 11);
        let b = data(PART_SIZE, 12);
        let c = data(PART_SIZE, 13);
        let id = Uuid::new_v4();
        let st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        let s1 = via_database(&f.store.append(id, st, body_of(&a, 300)).await.unwrap());
        let _lost = f
            .store
            .append(id, s1.clone(), body_of(&b, 64 * 1024))
            .await
            .unwrap();
        match f.store.append(id, s1, body_of(&c, 64 * 1024)).await {
            Ok(s3) => {
                let expected = [a, c].concat();
                let d = sha256(&expected);
                f.store.finish(id, s3, &d).await.unwrap();
                assert_eq!(read(&f.store, &d, None).await, expected);
            }
            Err(StoreError::BadUploadState(_)) if f.root.is_none() => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }

    pub async fn listing_yields_every_blob_and_nothing_else(f: &Fixture) {
        let before = std::time::SystemTime::now() - Duration::from_secs(5);
        let mut expected = Vec::new();
        for seed in 0..5 {
            let bytes = data(100 + seed as usize, 200 + seed);
            let d = sha256(&bytes);
            f.store
                .put_verified(&d, Bytes::from(bytes.clone()))
                .await
                .unwrap();
            expected.push((d.to_string(), bytes.len() as u64));
        }
        let big = data(3000, 300);
        let d512 = Digest::of(DigestAlgorithm::Sha512, &big);
        f.store.put_verified(&d512, Bytes::from(big)).await.unwrap();
        expected.push((d512.to_string(), 3000));
        // An upload in progress is not a blob.
        let id = Uuid::new_v4();
        let st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        f.store
            .append(id, st, body_of(b"partial", 3))
            .await
            .unwrap();
        let removed = sha256(b"removed again");
        f.store
            .put_verified(&removed, Bytes::from_static(b"removed again"))
            .await
            .unwrap();
        f.store.delete(&removed).await.unwrap();

        let listed: Vec<wharf_store::ListedBlob> = f
            .store
            .list_blobs()
            .try_collect()
            .await
            .expect("list blobs");
        let mut got: Vec<(String, u64)> = listed
            .iter()
            .map(|b| (b.digest.to_string(), b.size))
            .collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        for blob in &listed {
            assert!(blob.modified > before, "modification time is recent");
        }
    }

    pub async fn foreign_or_corrupt_state_is_rejected(f: &Fixture) {
        let id = Uuid::new_v4();
        let mut st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        st.backend = serde_json::json!({"backend": "nonsense"});
        let err = f.store.append(id, st.clone(), body_of(b"x", 1)).await;
        assert!(matches!(err, Err(StoreError::BadUploadState(_))), "{err:?}");
        let mut st = f
            .store
            .begin_upload(id, DigestAlgorithm::Sha256)
            .await
            .unwrap();
        st.hash_state = vec![1, 2, 3];
        let err = f.store.append(id, st, body_of(b"x", 1)).await;
        assert!(matches!(err, Err(StoreError::BadUploadState(_))), "{err:?}");
    }
}

macro_rules! backend_tests {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        if let Some(f) = Fixture::$backend().await {
                            scenarios::$name(&f).await;
                        }
                    }
                };
            }

            case!(monolithic_put);
            case!(chunked_upload_resumes_from_saved_state);
            case!(digest_mismatch_leaves_nothing_visible);
            case!(ranged_reads);
            case!(interrupted_append_is_retried_from_saved_state);
            case!(abort_discards_everything);
            case!(purge_removes_only_stale_uploads);
            case!(sha512_uploads);
            case!(digest_algorithm_named_only_at_the_end);
            case!(empty_blob_and_repeated_finish);
            case!(foreign_or_corrupt_state_is_rejected);
            case!(stale_state_never_mixes_contents);
            case!(listing_yields_every_blob_and_nothing_else);
        }
    };
}

backend_tests!(filesystem);
backend_tests!(memory);
backend_tests!(s3);

/// Object stores: a blob larger than S3's 5 MiB minimum part, sent in small
/// appends, goes through full parts plus a tail, and its state says so.
async fn many_small_appends(f: &Fixture, total: usize, append_size: usize) {
    let bytes = data(total, 10);
    let d = sha256(&bytes);
    let id = Uuid::new_v4();
    let mut st = f
        .store
        .begin_upload(id, DigestAlgorithm::Sha256)
        .await
        .unwrap();
    for chunk in bytes.chunks(append_size) {
        st = f
            .store
            .append(id, via_database(&st), body_of(chunk, 16 * 1024))
            .await
            .unwrap();
    }
    let full_parts = total / PART_SIZE;
    assert_eq!(
        st.backend["parts"].as_array().map(Vec::len),
        Some(full_parts),
        "{}",
        st.backend
    );
    assert_eq!(st.backend["tail_len"], (total % PART_SIZE) as u64);
    let blob = f
        .other_process()
        .await
        .finish(id, via_database(&st), &d)
        .await
        .unwrap();
    assert_eq!(blob.size, total as u64);
    assert_eq!(f.store.stat(&d).await.unwrap(), Some(total as u64));
    let mid = PART_SIZE as u64 - 100;
    assert_eq!(
        read(&f.store, &d, range(mid, mid + 299)).await,
        bytes[mid as usize..mid as usize + 300]
    );
    assert_eq!(read(&f.store, &d, None).await, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_large_blob_in_100k_appends() {
    let f = Fixture::memory().await.unwrap();
    many_small_appends(&f, 2 * PART_SIZE + 123_457, 100 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_12mib_blob_in_256k_appends() {
    if let Some(f) = Fixture::s3().await {
        many_small_appends(&f, 12 * 1024 * 1024, 256 * 1024).await;
    }
}

#[tokio::test]
async fn filesystem_append_truncates_leftovers_of_a_failed_append() {
    let f = Fixture::filesystem().await.unwrap();
    let id = Uuid::new_v4();
    let st = f
        .store
        .begin_upload(id, DigestAlgorithm::Sha256)
        .await
        .unwrap();
    let st = f.store.append(id, st, body_of(b"hello ", 3)).await.unwrap();
    assert!(
        f.store
            .append(id, st.clone(), broken_body(b"GARBAGE GARBAGE", 5))
            .await
            .is_err()
    );
    let data_file = f
        .root
        .as_ref()
        .unwrap()
        .join("uploads")
        .join(id.to_string())
        .join("data");
    // A failed append may leave bytes behind (here: as if the process died
    // after its buffer reached the disk).
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&data_file)
            .unwrap();
        file.write_all(b"GARBAGE").unwrap();
    }
    assert!(std::fs::metadata(&data_file).unwrap().len() >= 13);
    let st = f.store.append(id, st, body_of(b"world", 2)).await.unwrap();
    assert_eq!(std::fs::read(&data_file).unwrap(), b"hello world");
    f.store
        .finish(id, st, &sha256(b"hello world"))
        .await
        .unwrap();
    assert!(!data_file.exists());
}

/// Reads of a blob larger than one mapped window, whole and across a window
/// boundary, return exactly the bytes written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_reads_span_mapping_windows() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::from_config(&StorageConfig::Filesystem {
        root: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let size = 70 * 1024 * 1024 + 123;
    let byte_at = |i: usize| ((i * 31 + i / 4096) % 251) as u8;
    let data: Vec<u8> = (0..size).map(byte_at).collect();
    let digest = sha256(&data);
    let id = Uuid::new_v4();
    let st = store
        .begin_upload(id, DigestAlgorithm::Sha256)
        .await
        .unwrap();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = data
        .chunks(1 << 20)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let st = store
        .append(id, st, futures_util::stream::iter(chunks).boxed())
        .await
        .unwrap();
    store.finish(id, st, &digest).await.unwrap();

    let read = |range: Option<ByteRange>| {
        let store = store.clone();
        let digest = digest.clone();
        async move {
            let body = store.get(&digest, range).await.unwrap();
            let mut out = Vec::with_capacity(body.len as usize);
            let mut stream = body.stream;
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(out.len() as u64, body.len);
            out
        }
    };
    assert!(read(None).await == data, "whole blob");
    let window = 64 * 1024 * 1024;
    let across = read(Some(ByteRange {
        start: window - 10,
        end_inclusive: window + 9,
    }))
    .await;
    assert_eq!(across, &data[window as usize - 10..window as usize + 10]);
    let tail = read(Some(ByteRange {
        start: size as u64 - 5,
        end_inclusive: size as u64 + 100,
    }))
    .await;
    assert_eq!(tail, &data[size - 5..]);
}
