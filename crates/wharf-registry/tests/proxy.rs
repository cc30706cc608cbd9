//! Pull-through caching through the `Upstream` seam. The upstream is a
//! second real registry (this crate's `/v2` on its own port and database);
//! the seam's implementation here is a few lines of HTTP to it that count
//! what they ask and can be told to fail the ways a network fails: down,
//! corrupting a blob, or slow. The production implementation (over the
//! replication endpoints) is tested end to end in wharf-gateway.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use support::{OCI_MANIFEST, TestApp, sha256};
use wharf_oci::{Digest, Reference, RepositoryName};
use wharf_registry::seams::{
    Upstream, UpstreamBlob, UpstreamError, UpstreamManifest, UpstreamSource,
};

/// What the seam asked the upstream, and how it should misbehave.
#[derive(Default)]
struct Wire {
    heads: AtomicU64,
    manifests: AtomicU64,
    blobs: AtomicU64,
    down: AtomicBool,
    corrupt_blobs: AtomicBool,
    /// Pause between blob chunks, in milliseconds.
    slow_ms: AtomicU64,
}

/// Repositories under `hub/` mirror the upstream's repository of the rest
/// of the name; everything else is local.
struct TestUpstream {
    base: String,
    http: reqwest::Client,
    wire: Arc<Wire>,
    recheck: Duration,
}

struct Source {
    base: String,
    repo: String,
    http: reqwest::Client,
    wire: Arc<Wire>,
}

#[async_trait]
impl Upstream for TestUpstream {
    async fn source(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<Arc<dyn UpstreamSource>>, UpstreamError> {
        Ok(repository.as_str().strip_prefix("hub/").map(|rest| {
            Arc::new(Source {
                base: self.base.clone(),
                repo: rest.to_owned(),
                http: self.http.clone(),
                wire: self.wire.clone(),
            }) as Arc<dyn UpstreamSource>
        }))
    }

    fn recheck_interval(&self) -> Duration {
        self.recheck
    }
}

impl Source {
    fn check_up(&self) -> Result<(), UpstreamError> {
        if self.wire.down.load(Ordering::SeqCst) {
            return Err(UpstreamError::Unavailable("connection refused".into()));
        }
        Ok(())
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, UpstreamError> {
        rb.header(
            "Accept",
            format!("{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"),
        )
        .send()
        .await
        .map_err(|e| UpstreamError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl UpstreamSource for Source {
    fn describe(&self) -> String {
        format!("test upstream {} (repository {})", self.base, self.repo)
    }

    async fn head_manifest(&self, reference: &Reference) -> Result<Option<Digest>, UpstreamError> {
        self.check_up()?;
        self.wire.heads.fetch_add(1, Ordering::SeqCst);
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repo);
        let resp = self.send(self.http.head(url)).await?;
        if resp.status() == 404 {
            return Ok(None);
        }
        let digest = resp.headers()["docker-content-digest"].to_str().unwrap();
        Ok(Some(Digest::parse(digest).unwrap()))
    }

    async fn get_manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        self.check_up()?;
        self.wire.manifests.fetch_add(1, Ordering::SeqCst);
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repo);
        let resp = self.send(self.http.get(url)).await?;
        if resp.status() == 404 {
            return Ok(None);
        }
        let media_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        Ok(Some(UpstreamManifest {
            bytes: resp.bytes().await.unwrap(),
            media_type,
        }))
    }

    async fn get_blob(&self, digest: &Digest) -> Result<Option<UpstreamBlob>, UpstreamError> {
        self.check_up()?;
        self.wire.blobs.fetch_add(1, Ordering::SeqCst);
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repo);
        let resp = self.send(self.http.get(url)).await?;
        if resp.status() == 404 {
            return Ok(None);
        }
        let size = resp.content_length();
        let corrupt = self.wire.corrupt_blobs.load(Ordering::SeqCst);
        let wire = self.wire.clone();
        let stream = resp
            .bytes_stream()
            .map_err(std::io::Error::other)
            .then(move |chunk| {
                let pause = wire.slow_ms.load(Ordering::SeqCst);
                async move {
                    if pause > 0 {
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    chunk
                }
            })
            .map_ok(move |chunk: Bytes| {
                if corrupt {
                    let mut bytes = chunk.to_vec();
                    bytes[0] ^= 0xff;
                    Bytes::from(bytes)
                } else {
                    chunk
                }
            })
            .boxed();
        Ok(Some(UpstreamBlob { size, stream }))
    }

    async fn referrers(&self, _digest: &Digest) -> Result<Option<Bytes>, UpstreamError> {
        self.check_up()?;
        Ok(None)
    }
}

/// An upstream registry holding `team/app:v1`, and a cache in front of it.
async fn pair(recheck: Duration) -> (TestApp, TestApp, Arc<Wire>, Vec<u8>, String) {
    let upstream = TestApp::spawn().await;
    let (manifest, digest) = upstream.push_image("team/app", "v1", 2).await;
    let wire = Arc::new(Wire::default());
    let seam = TestUpstream {
        base: upstream.base.clone(),
        http: reqwest::Client::new(),
        wire: wire.clone(),
        recheck,
    };
    let cache = TestApp::spawn_with(move |r| r.with_upstream(Arc::new(seam))).await;
    (upstream, cache, wire, manifest, digest)
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("Accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
}

/// The digests of the config and layers of an OCI manifest.
fn blob_digests(manifest: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    std::iter::once(&v["config"])
        .chain(v["layers"].as_array().unwrap())
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect()
}

async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    (
        status,
        body["errors"][0]["code"].as_str().unwrap().to_owned(),
        body["errors"][0]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_miss_is_fetched_once_then_served_from_the_cache() {
    let (upstream, cache, wire, manifest, digest) = pair(Duration::from_secs(3600)).await;
    for round in 0..2 {
        let resp = get(&cache, "/v2/hub/team/app/manifests/v1").await;
        assert_eq!(resp.status(), 200, "round {round}");
        assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(resp.bytes().await.unwrap(), manifest);
        for blob in blob_digests(&manifest) {
            let resp = get(&cache, &format!("/v2/hub/team/app/blobs/{blob}")).await;
            assert_eq!(resp.status(), 200);
            let want = get(&upstream, &format!("/v2/team/app/blobs/{blob}")).await;
            assert_eq!(resp.bytes().await.unwrap(), want.bytes().await.unwrap());
        }
        // Everything came from the upstream exactly once.
        assert_eq!(wire.manifests.load(Ordering::SeqCst), 1);
        assert_eq!(wire.blobs.load(Ordering::SeqCst), 2 + 1);
        assert_eq!(wire.heads.load(Ordering::SeqCst), 0);
    }
    // By digest too, and the cached tag lists.
    let resp = get(&cache, &format!("/v2/hub/team/app/manifests/{digest}")).await;
    assert_eq!(resp.status(), 200);
    let tags: serde_json::Value = get(&cache, "/v2/hub/team/app/tags/list")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    assert_eq!(wire.manifests.load(Ordering::SeqCst), 1);
    // Repositories outside proxy projects never reach the upstream.
    let resp = get(&cache, "/v2/team/app/manifests/v1").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(wire.manifests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stale_tag_costs_one_head_and_follows_a_move_upstream() {
    let (upstream, cache, wire, _, first) = pair(Duration::ZERO).await;
    assert_eq!(
        get(&cache, "/v2/hub/team/app/manifests/v1").await.status(),
        200
    );
    let resp = get(&cache, "/v2/hub/team/app/manifests/v1").await;
    assert_eq!(resp.headers()["docker-content-digest"], first.as_str());
    assert_eq!(wire.heads.load(Ordering::SeqCst), 1);
    assert_eq!(wire.manifests.load(Ordering::SeqCst), 1);

    let (_, moved) = upstream.push_image("team/app", "v1", 1).await;
    let resp = get(&cache, "/v2/hub/team/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-content-digest"], moved.as_str());
    assert_eq!(wire.heads.load(Ordering::SeqCst), 2);
    assert_eq!(wire.manifests.load(Ordering::SeqCst), 2);
    // The old manifest stays pullable by digest.
    let resp = get(&cache, &format!("/v2/hub/team/app/manifests/{first}")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn with_the_upstream_down_the_cache_serves_what_it_has_and_names_the_upstream() {
    let (_upstream, cache, wire, manifest, digest) = pair(Duration::ZERO).await;
    assert_eq!(
        get(&cache, "/v2/hub/team/app/manifests/v1").await.status(),
        200
    );
    let blobs = blob_digests(&manifest);
    assert_eq!(
        get(&cache, &format!("/v2/hub/team/app/blobs/{}", blobs[0]))
            .await
            .status(),
        200
    );
    wire.down.store(true, Ordering::SeqCst);

    let resp = get(&cache, "/v2/hub/team/app/manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
    let resp = get(&cache, &format!("/v2/hub/team/app/blobs/{}", blobs[0])).await;
    assert_eq!(resp.status(), 200);

    let (status, code, message) =
        error_of(get(&cache, "/v2/hub/team/app/manifests/v2").await).await;
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    assert!(
        message.contains("cannot be reached") && message.contains("test upstream"),
        "{message}"
    );
    let (status, code, message) =
        error_of(get(&cache, &format!("/v2/hub/team/app/blobs/{}", blobs[1])).await).await;
    assert_eq!((status, code.as_str()), (404, "BLOB_UNKNOWN"));
    assert!(message.contains("cannot be reached"), "{message}");

    // Unknown upstream too: a plain "unknown", naming the upstream.
    wire.down.store(false, Ordering::SeqCst);
    let (status, code, message) =
        error_of(get(&cache, "/v2/hub/team/nothing/manifests/v1").await).await;
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    assert!(message.contains("its upstream test upstream"), "{message}");
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_is_never_cached() {
    let (upstream, cache, wire, manifest, _) = pair(Duration::from_secs(3600)).await;
    assert_eq!(
        get(&cache, "/v2/hub/team/app/manifests/v1").await.status(),
        200
    );
    let blob = blob_digests(&manifest)[1].clone();
    let path = format!("/v2/hub/team/app/blobs/{blob}");

    wire.corrupt_blobs.store(true, Ordering::SeqCst);
    let resp = get(&cache, &path).await;
    assert_eq!(resp.status(), 200);
    // The body ends before its last chunk: no client gets a whole wrong blob.
    assert!(
        resp.bytes().await.is_err(),
        "a corrupt blob was delivered whole"
    );
    assert_eq!(wire.blobs.load(Ordering::SeqCst), 1);

    // Nothing was kept: the next pull goes upstream again, and caches.
    wire.corrupt_blobs.store(false, Ordering::SeqCst);
    let want = get(&upstream, &format!("/v2/team/app/blobs/{blob}"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(get(&cache, &path).await.bytes().await.unwrap(), want);
    assert_eq!(wire.blobs.load(Ordering::SeqCst), 2);
    assert_eq!(get(&cache, &path).await.bytes().await.unwrap(), want);
    assert_eq!(wire.blobs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_that_leaves_mid_blob_leaves_no_half_blob_and_the_fill_completes() {
    let upstream = TestApp::spawn().await;
    // A layer of several chunks, streamed slowly.
    let layer: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let digest = upstream.push_blob("team/big", &layer).await;
    let wire = Arc::new(Wire::default());
    wire.slow_ms.store(20, Ordering::SeqCst);
    let seam = TestUpstream {
        base: upstream.base.clone(),
        http: reqwest::Client::new(),
        wire: wire.clone(),
        recheck: Duration::from_secs(3600),
    };
    let cache = TestApp::spawn_with(move |r| r.with_upstream(Arc::new(seam))).await;
    let path = format!("/v2/hub/team/big/blobs/{digest}");

    let resp = get(&cache, &path).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty() && first.len() < layer.len());
    drop(body);
    // Mid-fill, the blob is not visible (a HEAD would have to ask upstream).
    let head = cache.client.head(cache.url(&path)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        wire.blobs.load(Ordering::SeqCst),
        2,
        "a half blob was served locally"
    );

    // The abandoned fill still completes and verifies; then it is local.
    wire.slow_ms.store(0, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let before = wire.blobs.load(Ordering::SeqCst);
        let resp = cache.client.head(cache.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        if wire.blobs.load(Ordering::SeqCst) == before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fill never completed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = wire.blobs.load(Ordering::SeqCst);
    let got = get(&cache, &path).await.bytes().await.unwrap();
    assert_eq!(sha256(&got), digest);
    assert_eq!(got.len(), layer.len());
    assert_eq!(wire.blobs.load(Ordering::SeqCst), before);
}
