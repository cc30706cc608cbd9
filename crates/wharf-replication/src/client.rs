//! A client for one Docker Registry v2 / OCI distribution endpoint: the
//! calls replication needs (ping, catalog, tags, manifests, blobs with
//! cross-repository mount and streamed or chunked uploads, referrers), with
//! anonymous, Basic or bearer-token authentication as the server asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;
use url::Url;

/// Every manifest media type a copy must carry over, so the source never
/// converts a manifest (which would change its digest) for lack of an
/// `Accept` entry.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.artifact.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// What can go wrong talking to a registry or copying between two.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("authentication with {0}")]
    Auth(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{what} not found on the source")]
    NotFound { what: String },
}

impl ReplicationError {
    /// Whether retrying later may succeed (network errors, 5xx, 429); a 4xx
    /// such as a refused credential or a bad manifest will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            ReplicationError::Http { .. } => true,
            ReplicationError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, ReplicationError>;

/// Mints bearer tokens for a registry that trusts the caller without a
/// password: this Wharf's own `/v2`, whose token signer runs in the same
/// process (see `wharf_auth::Auth::service_token`).
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A token granting `scopes` (`repository:<name>:pull,push`, ...).
    async fn token(&self, scopes: &[String]) -> Result<String>;
}

/// Where a registry is and how to log in to it.
#[derive(Clone)]
pub struct Endpoint {
    /// `http(s)://host[:port]`, without `/v2`.
    pub url: Url,
    /// Username and password (or token) for Basic auth and token requests.
    pub credential: Option<(String, String)>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Answers bearer challenges instead of the challenge's realm.
    pub token_source: Option<Arc<dyn TokenSource>>,
}

// By hand: the credential and token source must never reach a log.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("user", &self.credential.as_ref().map(|(u, _)| u))
            .field("insecure", &self.insecure)
            .field("token_source", &self.token_source.is_some())
            .finish()
    }
}

impl Endpoint {
    pub fn new(url: &str) -> Result<Self> {
        let url = Url::parse(url.trim_end_matches('/'))
            .map_err(|e| ReplicationError::Invalid(format!("invalid endpoint URL {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ReplicationError::Invalid(format!(
                "endpoint URL {url} must be http or https"
            )));
        }
        Ok(Self {
            url,
            credential: None,
            insecure: false,
            token_source: None,
        })
    }

    pub fn with_token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.token_source = Some(source);
        self
    }

    pub fn with_basic(mut self, username: &str, password: &str) -> Self {
        self.credential = Some((username.to_owned(), password.to_owned()));
        self
    }

    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }
}

/// How the server wants to be authenticated, learnt once from `GET /v2/`.
#[derive(Debug, Clone)]
enum Challenge {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A manifest as fetched: its exact bytes (the digest is over them), its
/// media type and digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: String,
}

impl Manifest {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            ReplicationError::Invalid(format!("manifest {} is not JSON: {e}", self.digest))
        })
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A client for one endpoint. Requests made by one client share its token
/// cache; clone the `Arc` around it rather than the client.
pub struct RegistryClient {
    endpoint: Endpoint,
    http: reqwest::Client,
    challenge: OnceCell<Challenge>,
    tokens: Mutex<HashMap<String, String>>,
    /// Requests sent, by path kind (for tests and diagnostics).
    requests: std::sync::atomic::AtomicU64,
}

impl RegistryClient {
    pub fn new(endpoint: Endpoint) -> Result<Self> {
        let http = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(endpoint.insecure)
            .connect_timeout(Duration::from_secs(10))
            // A layer may stream for a long time; only stalls are errors.
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("wharf-replication/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ReplicationError::Invalid(format!("HTTP client: {e}")))?;
        Ok(Self {
            endpoint,
            http,
            challenge: OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
            requests: Default::default(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How many requests this client has sent.
    pub fn request_count(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.endpoint.url.as_str().trim_end_matches('/'),
            path
        )
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        req.send().await.map_err(|source| ReplicationError::Http {
            url: url.to_owned(),
            source,
        })
    }

    async fn challenge(&self) -> Result<Challenge> {
        self.challenge
            .get_or_try_init(|| async {
                let url = self.url("/v2/");
                let resp = self.send(self.http.get(&url), &url).await?;
                if resp.status() != StatusCode::UNAUTHORIZED {
                    return Ok(Challenge::Anonymous);
                }
                let header = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                parse_challenge(&header).ok_or_else(|| {
                    ReplicationError::Auth(format!(
                        "{url} asked for authentication with an unsupported challenge {header:?}"
                    ))
                })
            })
            .await
            .cloned()
    }

    fn basic_header(&self) -> Option<String> {
        self.endpoint.credential.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// The `Authorization` header for requests needing `scopes`
    /// (`repository:<name>:pull,push`), fetching a token when the server
    /// uses bearer tokens.
    async fn auth(&self, scopes: &[String]) -> Result<Option<String>> {
        match self.challenge().await? {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => Ok(self.basic_header()),
            Challenge::Bearer { realm, service } => {
                let key = scopes.join(" ");
                if let Some(t) = self.tokens.lock().expect("token cache").get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                if let Some(source) = &self.endpoint.token_source {
                    let token = source.token(scopes).await?;
                    self.tokens
                        .lock()
                        .expect("token cache")
                        .insert(key, token.clone());
                    return Ok(Some(format!("Bearer {token}")));
                }
                let mut url = Url::parse(&realm)
                    .map_err(|e| ReplicationError::Auth(format!("token realm {realm:?}: {e}")))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = &service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let mut req = self.http.get(url.clone());
                if let Some(h) = self.basic_header() {
                    req = req.header(AUTHORIZATION, h);
                }
                let resp = self.send(req, url.as_str()).await?;
                if !resp.status().is_success() {
                    return Err(ReplicationError::Auth(format!(
                        "token endpoint {realm} refused the credentials ({})",
                        resp.status()
                    )));
                }
                let body: serde_json::Value =
                    resp.json().await.map_err(|source| ReplicationError::Http {
                        url: realm.clone(),
                        source,
                    })?;
                let token = body
                    .get("token")
                    .or_else(|| body.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| ReplicationError::Auth(format!("{realm} returned no token")))?
                    .to_owned();
                self.tokens
                    .lock()
                    .expect("token cache")
                    .insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Send a request that has no streamed body, authenticated for
    /// `scopes`; one retry with a fresh token after a 401 (tokens expire).
    async fn request(
        &self,
        method: Method,
        url: &str,
        scopes: &[String],
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        for attempt in 0..2 {
            let mut req = build(self.http.request(method.clone(), url));
            if let Some(h) = self.auth(scopes).await? {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = self.send(req, url).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.tokens.lock().expect("token cache").clear();
                continue;
            }
            if resp.status() == StatusCode::UNAUTHORIZED {
                return Err(ReplicationError::Auth(format!(
                    "{} refused the credentials for {method} {url}",
                    self.endpoint.url
                )));
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn pull(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:pull")]
    }

    fn push(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:pull,push")]
    }

    /// Check that the endpoint is a registry and accepts the credentials.
    pub async fn ping(&self) -> Result<()> {
        let url = self.url("/v2/");
        let resp = self.request(Method::GET, &url, &[], |r| r).await?;
        expect_ok(resp, "GET", &url).await.map(|_| ())
    }

    /// Every repository (`GET /v2/_catalog`, following `Link` pages).
    pub async fn catalog(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = Some(self.url("/v2/_catalog?n=1000"));
        let scopes = vec!["registry:catalog:*".to_owned()];
        while let Some(url) = next.take() {
            let resp = self.request(Method::GET, &url, &scopes, |r| r).await?;
            let resp = expect_ok(resp, "GET", &url).await?;
            next = next_link(&resp).map(|l| self.url(&l));
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|source| ReplicationError::Http { url, source })?;
            if let Some(repos) = body.get("repositories").and_then(|r| r.as_array()) {
                out.extend(repos.iter().filter_map(|r| r.as_str().map(str::to_owned)));
            }
        }
        Ok(out)
    }

    /// The tags of `repo`; empty when the repository does not exist.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = Some(self.url(&format!("/v2/{repo}/tags/list?n=1000")));
        while let Some(url) = next.take() {
            let resp = self
                .request(Method::GET, &url, &Self::pull(repo), |r| r)
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(out);
            }
            let resp = expect_ok(resp, "GET", &url).await?;
            next = next_link(&resp).map(|l| self.url(&l));
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|source| ReplicationError::Http { url, source })?;
            if let Some(tags) = body.get("tags").and_then(|r| r.as_array()) {
                out.extend(tags.iter().filter_map(|r| r.as_str().map(str::to_owned)));
            }
        }
        Ok(out)
    }

    /// The manifest `reference` (tag or digest) of `repo`, `None` if absent.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Option<Manifest>> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let resp = self
            .request(Method::GET, &url, &Self::pull(repo), |r| {
                r.header(ACCEPT, accept.as_str())
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = expect_ok(resp, "GET", &url).await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ReplicationError::Http {
                url: url.clone(),
                source,
            })?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(ReplicationError::Invalid(format!(
                "{url} returned content whose digest is {digest}"
            )));
        }
        // Some servers answer with a generic type; the manifest's own field wins.
        let media_type = if media_type.is_empty() || media_type.starts_with("application/json") {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or(media_type)
        } else {
            media_type
        };
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// The digest `reference` resolves to, `None` if absent.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<String>> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let accept = MANIFEST_MEDIA_TYPES.join(", ");
        let resp = self
            .request(Method::HEAD, &url, &Self::pull(repo), |r| {
                r.header(ACCEPT, accept.as_str())
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = expect_ok(resp, "HEAD", &url).await?;
        match resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            Some(d) => Ok(Some(d.to_owned())),
            // Without the header only a digest reference identifies the content.
            None if reference.starts_with("sha256:") => Ok(Some(reference.to_owned())),
            None => Ok(self.get_manifest(repo, reference).await?.map(|m| m.digest)),
        }
    }

    /// Store `manifest` under `reference` (its digest or a tag).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .request(Method::PUT, &url, &Self::push(repo), |r| {
                r.header(CONTENT_TYPE, manifest.media_type.as_str())
                    .body(manifest.bytes.clone())
            })
            .await?;
        expect_ok(resp, "PUT", &url).await.map(|_| ())
    }

    /// Delete the manifest `digest` (and so every tag on it); `false` if absent.
    pub async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/manifests/{digest}"));
        let scopes = vec![format!("repository:{repo}:delete,pull,push")];
        let resp = self.request(Method::DELETE, &url, &scopes, |r| r).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        expect_ok(resp, "DELETE", &url).await.map(|_| true)
    }

    /// Whether `repo` has the blob `digest`.
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = self
            .request(Method::HEAD, &url, &Self::pull(repo), |r| r)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        expect_ok(resp, "HEAD", &url).await.map(|_| true)
    }

    /// The blob's bytes as a stream (the response, not yet read).
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Result<reqwest::Response> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = self
            .request(Method::GET, &url, &Self::pull(repo), |r| r)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(ReplicationError::NotFound {
                what: format!("blob {digest} of {repo}"),
            });
        }
        expect_ok(resp, "GET", &url).await
    }

    /// Ask the server to link `digest` from `from` into `repo` without
    /// transferring it. `false` when it would not (the upload it opened
    /// instead is cancelled).
    pub async fn mount_blob(&self, repo: &str, digest: &str, from: &str) -> Result<bool> {
        let url = self.url(&format!(
            "/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
        ));
        let scopes = vec![
            format!("repository:{repo}:pull,push"),
            format!("repository:{from}:pull"),
        ];
        let resp = self.request(Method::POST, &url, &scopes, |r| r).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        let resp = expect_ok(resp, "POST", &url).await?;
        if let Some(loc) = location(&resp) {
            let loc = self.resolve(&loc)?;
            let cancel = self
                .request(Method::DELETE, loc.as_str(), &Self::push(repo), |r| r)
                .await;
            if let Err(e) = cancel {
                tracing::debug!(error = %e, "could not cancel an upload opened by a refused mount");
            }
        }
        Ok(false)
    }

    fn resolve(&self, location: &str) -> Result<Url> {
        self.endpoint.url.join(location).map_err(|e| {
            ReplicationError::Invalid(format!("bad upload location {location:?}: {e}"))
        })
    }

    /// Upload the blob `digest` of `size` bytes into `repo` from `body`,
    /// streaming: in one `PUT` when `chunk_size` is `None`, otherwise in
    /// `PATCH`es of at most `chunk_size` bytes (each held in memory while sent).
    pub async fn push_blob<S>(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: S,
        chunk_size: Option<usize>,
    ) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
    {
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scopes = Self::push(repo);
        let resp = self
            .request(Method::POST, &start, &scopes, |r| {
                r.header(CONTENT_LENGTH, 0)
            })
            .await?;
        let resp = expect_ok(resp, "POST", &start).await?;
        let mut loc = self.resolve(&location(&resp).ok_or_else(|| {
            ReplicationError::Invalid(format!("{start} opened an upload without a Location"))
        })?)?;
        match chunk_size {
            None => {
                loc.query_pairs_mut().append_pair("digest", digest);
                let auth = self.auth(&scopes).await?;
                let mut req = self
                    .http
                    .put(loc.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(body));
                if let Some(h) = auth {
                    req = req.header(AUTHORIZATION, h);
                }
                let resp = self.send(req, loc.as_str()).await?;
                expect_ok(resp, "PUT", loc.as_str()).await?;
            }
            Some(chunk) => {
                let chunk = chunk.max(1);
                let mut body = body;
                let mut offset: u64 = 0;
                let mut buf: Vec<u8> = Vec::with_capacity(chunk);
                let mut done = false;
                while !done {
                    while buf.len() < chunk {
                        match body.next().await {
                            Some(Ok(b)) => buf.extend_from_slice(&b),
                            Some(Err(source)) => {
                                return Err(ReplicationError::Http {
                                    url: "source blob".into(),
                                    source,
                                });
                            }
                            None => {
                                done = true;
                                break;
                            }
                        }
                    }
                    // Send at most `chunk` bytes; the rest starts the next chunk.
                    let rest = if buf.len() > chunk {
                        buf.split_off(chunk)
                    } else {
                        Vec::new()
                    };
                    if !buf.is_empty() {
                        let len = buf.len() as u64;
                        let range = format!("{}-{}", offset, offset + len - 1);
                        let data = Bytes::from(std::mem::take(&mut buf));
                        let url = loc.to_string();
                        let resp = self
                            .request(Method::PATCH, &url, &scopes, |r| {
                                r.header(CONTENT_TYPE, "application/octet-stream")
                                    .header(CONTENT_RANGE, range.as_str())
                                    .header(CONTENT_LENGTH, len)
                                    .body(data.clone())
                            })
                            .await?;
                        let resp = expect_ok(resp, "PATCH", &url).await?;
                        if let Some(l) = location(&resp) {
                            loc = self.resolve(&l)?;
                        }
                        offset += len;
                    }
                    buf = rest;
                    if done && !buf.is_empty() {
                        done = false;
                    }
                }
                loc.query_pairs_mut().append_pair("digest", digest);
                let url = loc.to_string();
                let resp = self
                    .request(Method::PUT, &url, &scopes, |r| r.header(CONTENT_LENGTH, 0))
                    .await?;
                expect_ok(resp, "PUT", &url).await?;
            }
        }
        Ok(())
    }

    /// The referrers index of `digest` exactly as the server sent it;
    /// `None` when the server has no referrers API (answers 404 or 405).
    pub async fn referrers_index(&self, repo: &str, digest: &str) -> Result<Option<Bytes>> {
        let url = self.url(&format!("/v2/{repo}/referrers/{digest}"));
        let resp = self
            .request(Method::GET, &url, &Self::pull(repo), |r| r)
            .await?;
        if matches!(resp.status().as_u16(), 404 | 405) {
            return Ok(None);
        }
        let resp = expect_ok(resp, "GET", &url).await?;
        resp.bytes()
            .await
            .map(Some)
            .map_err(|source| ReplicationError::Http { url, source })
    }

    /// The manifests referring to `digest` through the referrers API;
    /// `None` when the server has no such API.
    pub async fn referrers(&self, repo: &str, digest: &str) -> Result<Option<Vec<String>>> {
        let url = self.url(&format!("/v2/{repo}/referrers/{digest}"));
        let resp = self
            .request(Method::GET, &url, &Self::pull(repo), |r| r)
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let body: serde_json::Value = match resp.json().await {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        Ok(Some(
            body.get("manifests")
                .and_then(|m| m.as_array())
                .map(|m| {
                    m.iter()
                        .filter_map(|d| d.get("digest").and_then(|d| d.as_str()).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }
}

/// Slow `stream` down to `kib_per_sec` KiB/s by sleeping between chunks.
pub fn throttle<S>(
    stream: S,
    kib_per_sec: u64,
) -> impl Stream<Item = std::result::Result<Bytes, reqwest::Error>> + Send + Unpin + 'static
where
    S: Stream<Item = std::result::Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    let rate = (kib_per_sec.max(1) * 1024) as f64;
    let started = Instant::now();
    Box::pin(futures_util::stream::unfold(
        (stream, 0u64),
        move |(mut s, sent)| async move {
            let item = s.next().await?;
            let sent = sent + item.as_ref().map(|b| b.len() as u64).unwrap_or(0);
            let due = Duration::from_secs_f64(sent as f64 / rate);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
            Some((item, (s, sent)))
        },
    ))
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The path of `Link: </v2/...>; rel="next"`.
fn next_link(resp: &reqwest::Response) -> Option<String> {
    let link = resp.headers().get(reqwest::header::LINK)?.to_str().ok()?;
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    let target = &link[start..end];
    // An absolute link is reduced to its path: the client's base stays authoritative.
    match Url::parse(target) {
        Ok(u) => Some(match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }),
        Err(_) => Some(target.to_owned()),
    }
}

async fn expect_ok(resp: reqwest::Response, method: &str, url: &str) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let mut body = resp.text().await.unwrap_or_default();
    body.truncate(500);
    Err(ReplicationError::Status {
        method: method.to_owned(),
        url: url.to_owned(),
        status,
        body,
    })
}

/// Parse `Basic realm=...` or `Bearer realm="...",service="..."`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for part in split_params(params) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            _ => {}
        }
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

/// Split challenge parameters on commas outside quotes.
fn split_params(params: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in params.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&params[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&params[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        match parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull,push""#,
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.example/token");
                assert_eq!(service.as_deref(), Some("registry"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }
}
