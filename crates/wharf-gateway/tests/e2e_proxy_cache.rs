//! Proxy-cache projects end to end: a real `wharf serve` pulling through from
//! Debian's `docker-registry` on loopback, driven by skopeo. The upstream's
//! access log counts what reaches it: the first pull goes upstream, the
//! second does not; a re-check interval of zero asks only `HEAD`; a tag moved
//! upstream is followed; with the upstream stopped the cached image still
//! pulls and an uncached one fails with a message naming the upstream; a
//! push into the proxy project is refused. Wharf only.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, E2E_ADMIN, Flavor, Image, Oci, Rng, Server, oci_layout_blob, run, tool};

/// `docker-registry serve` on a free loopback port, its access log in a file.
struct Upstream {
    child: Child,
    host: String,
    access_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    fn start() -> Option<Upstream> {
        let bin = Path::new("/usr/bin/docker-registry");
        if !bin.exists() {
            assert!(!support::in_ci(), "docker-registry must be installed in CI");
            eprintln!("SKIPPED: docker-registry is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: e2e-proxy\n",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let access_log = dir.path().join("access.log");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(std::fs::File::create(&access_log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("error.log")).unwrap())
            .spawn()
            .expect("docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Upstream {
            child,
            host: format!("127.0.0.1:{port}"),
            access_log,
            _dir: dir,
        })
    }

    /// Requests for manifests and blobs the upstream has answered so far,
    /// as `METHOD /v2/...` lines.
    fn content_requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let request = line.split('"').nth(1)?;
                let mut parts = request.split(' ');
                let (method, path) = (parts.next()?, parts.next()?);
                (path.contains("/manifests/") || path.contains("/blobs/"))
                    .then(|| format!("{method} {path}"))
            })
            .collect()
    }

    fn stop(self) {}
}

/// A policy that accepts any image, so skopeo never depends on the host's
/// `/etc/containers/policy.json`.
fn write_policy(dir: &Path) -> PathBuf {
    let path = dir.join("policy.json");
    std::fs::write(&path, br#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    path
}

struct Skopeo {
    bin: PathBuf,
    policy: PathBuf,
}

impl Skopeo {
    fn copy_cmd(&self, from: &str, to: &str, creds: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--policy")
            .arg(&self.policy)
            .args(["copy", "--retry-times", "0", "--preserve-digests", "--all"])
            .args(["--src-tls-verify=false", "--dest-tls-verify=false"]);
        if let Some(creds) = creds {
            if from.starts_with("docker://") {
                cmd.args(["--src-creds", creds]);
            }
            if to.starts_with("docker://") {
                cmd.args(["--dest-creds", creds]);
            }
        }
        cmd.arg(from).arg(to);
        cmd
    }

    fn copy(&self, from: &str, to: &str, creds: Option<&str>) {
        run(&mut self.copy_cmd(from, to, creds)).expect("skopeo copy");
    }

    /// The copy's error output; panics if it succeeded.
    fn copy_fails(&self, from: &str, to: &str, creds: Option<&str>) -> String {
        let out = self
            .copy_cmd(from, to, creds)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "skopeo copy {from} {to} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Administrator calls to the REST API.
async fn api(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut rb = reqwest::Client::new()
        .request(method, format!("{}/api/v2.0{path}", server.base))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1));
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

fn write_layout(dir: &Path, image: &Image) {
    support::write_oci_layout(dir, "v1", &image.manifest, image.blobs()).unwrap();
}

/// Every blob of `image` is in the pulled layout at `dir`, byte for byte.
fn assert_pulled(dir: &Path, image: &Image) {
    assert_eq!(
        oci_layout_blob(dir, &image.manifest.digest).expect("manifest"),
        image.manifest.bytes
    );
    for blob in image.blobs() {
        assert_eq!(
            oci_layout_blob(dir, &blob.digest).expect("blob in pulled layout"),
            blob.bytes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_project_pulls_through_caches_and_survives_its_upstream() {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: proxy-cache projects are Wharf's");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(bin) = tool("skopeo") else {
        return;
    };
    let skopeo = Skopeo {
        bin,
        policy: write_policy(work.path()),
    };
    let Some(upstream) = Upstream::start() else {
        return;
    };
    let mut rng = Rng::new();
    let creds = format!("{}:{}", E2E_ADMIN.0, E2E_ADMIN.1);

    // The upstream holds an image and a two-platform index.
    let image = support::random_image(&mut rng, 3, 300 * 1024, "amd64");
    let layout = work.path().join("image");
    write_layout(&layout, &image);
    skopeo.copy(
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/team/app:v1", upstream.host),
        None,
    );
    let index = support::random_index(&mut rng, 1, 64 * 1024);
    let index_layout = work.path().join("index");
    let index_blobs: Vec<&support::Blob> = index
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    support::write_oci_layout(&index_layout, "v1", &index.index, index_blobs).unwrap();
    skopeo.copy(
        &format!("oci:{}:v1", index_layout.display()),
        &format!("docker://{}/team/multi:v1", upstream.host),
        None,
    );

    let server = backend
        .start_with_env(&[("WHARF_REPLICATION_PROXY_RECHECK_SECS", "3600".into())])
        .await;
    let (status, body, headers) = api(
        &server,
        reqwest::Method::POST,
        "/registries",
        Some(json!({
            "name": "upstream",
            "type": "docker-registry",
            "url": format!("http://{}", upstream.host),
            "insecure": false,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let location = headers["location"].to_str().unwrap();
    let registry_id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();

    // A registry that does not exist is refused; a real one makes a proxy.
    let (status, body, _) = api(
        &server,
        reqwest::Method::POST,
        "/projects",
        Some(json!({ "project_name": "nowhere", "registry_id": registry_id + 1000 })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body, _) = api(
        &server,
        reqwest::Method::POST,
        "/projects",
        Some(json!({ "project_name": "hub", "registry_id": registry_id })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, project, _) = api(&server, reqwest::Method::GET, "/projects/hub", None).await;
    assert_eq!(status, StatusCode::OK, "{project}");
    assert_eq!(project["registry_id"], json!(registry_id));
    let project_id = project["project_id"].as_i64().unwrap();

    // First pull: everything comes from the upstream.
    let before = upstream.content_requests().len();
    let first = work.path().join("first");
    skopeo.copy(
        &format!("docker://{}/hub/team/app:v1", server.host()),
        &format!("oci:{}:v1", first.display()),
        Some(&creds),
    );
    assert_pulled(&first, &image);
    let fetched = upstream.content_requests()[before..].to_vec();
    for blob in image.blobs() {
        assert!(
            fetched
                .iter()
                .any(|r| r.ends_with(&format!("/blobs/{}", blob.digest))),
            "blob {} was not fetched upstream: {fetched:?}",
            blob.digest
        );
    }

    // Second pull: served from the cache, the upstream is not asked.
    let before = upstream.content_requests().len();
    let second = work.path().join("second");
    skopeo.copy(
        &format!("docker://{}/hub/team/app:v1", server.host()),
        &format!("oci:{}:v1", second.display()),
        Some(&creds),
    );
    assert_pulled(&second, &image);
    assert_eq!(
        upstream.content_requests()[before..],
        [] as [String; 0],
        "the second pull reached the upstream"
    );

    // An index: its children are fetched as the client asks for them.
    let multi = work.path().join("multi");
    skopeo.copy(
        &format!("docker://{}/hub/team/multi:v1", server.host()),
        &format!("oci:{}:v1", multi.display()),
        Some(&creds),
    );
    assert_eq!(
        oci_layout_blob(&multi, &index.index.digest).unwrap(),
        index.index.bytes
    );
    for child in &index.images {
        assert_pulled(&multi, child);
    }

    // Cached content counts towards the project's quota.
    let (status, quotas, _) = api(
        &server,
        reqwest::Method::GET,
        &format!("/quotas?reference=project&reference_id={project_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{quotas}");
    let cached_bytes: u64 = image
        .blobs()
        .chain(std::iter::once(&image.manifest))
        .map(|b| b.bytes.len() as u64)
        .sum();
    assert!(
        quotas[0]["used"]["storage"].as_u64().unwrap() >= cached_bytes,
        "{quotas}"
    );

    // A proxy project over its quota refuses to cache, and says why.
    let (status, body, _) = api(
        &server,
        reqwest::Method::POST,
        "/projects",
        Some(json!({ "project_name": "tiny", "registry_id": registry_id, "storage_limit": 1024 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let err = skopeo.copy_fails(
        &format!("docker://{}/tiny/team/app:v1", server.host()),
        &format!("oci:{}:v1", work.path().join("tiny").display()),
        Some(&creds),
    );
    assert!(err.contains("quota"), "{err}");

    // Pushes into a proxy project are refused, with the reason.
    let err = skopeo.copy_fails(
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/hub/team/mine:v1", server.host()),
        Some(&creds),
    );
    assert!(err.contains("proxy project"), "{err}");

    // The endpoint cannot be deleted while the project uses it.
    let (status, body, _) = api(
        &server,
        reqwest::Method::DELETE,
        &format!("/registries/{registry_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");

    // With a re-check interval of zero, a cached tag costs one HEAD upstream.
    let eager = backend
        .start_with_env(&[("WHARF_REPLICATION_PROXY_RECHECK_SECS", "0".into())])
        .await;
    let before = upstream.content_requests().len();
    let third = work.path().join("third");
    skopeo.copy(
        &format!("docker://{}/hub/team/app:v1", eager.host()),
        &format!("oci:{}:v1", third.display()),
        Some(&creds),
    );
    assert_pulled(&third, &image);
    let asked = upstream.content_requests()[before..].to_vec();
    assert!(
        !asked.is_empty()
            && asked
                .iter()
                .all(|r| r.starts_with("HEAD ") && r.contains("/manifests/")),
        "expected only manifest HEADs upstream, got {asked:?}"
    );

    // The tag moves upstream: the next pull follows it.
    let moved = support::random_image(&mut rng, 2, 100 * 1024, "amd64");
    let moved_layout = work.path().join("moved");
    write_layout(&moved_layout, &moved);
    skopeo.copy(
        &format!("oci:{}:v1", moved_layout.display()),
        &format!("docker://{}/team/app:v1", upstream.host),
        None,
    );
    let fourth = work.path().join("fourth");
    skopeo.copy(
        &format!("docker://{}/hub/team/app:v1", eager.host()),
        &format!("oci:{}:v1", fourth.display()),
        Some(&creds),
    );
    assert_pulled(&fourth, &moved);

    // The upstream goes away: cached content is still served...
    upstream.stop();
    let offline = work.path().join("offline");
    skopeo.copy(
        &format!("docker://{}/hub/team/app:v1", eager.host()),
        &format!("oci:{}:v1", offline.display()),
        Some(&creds),
    );
    assert_pulled(&offline, &moved);
    let offline_digest = work.path().join("offline-digest");
    skopeo.copy(
        &format!(
            "docker://{}/hub/team/app@{}",
            server.host(),
            image.manifest.digest
        ),
        &format!("oci:{}:bydigest", offline_digest.display()),
        Some(&creds),
    );
    assert_pulled(&offline_digest, &image);

    // ...and what was never cached fails clearly, naming the upstream.
    let err = skopeo.copy_fails(
        &format!("docker://{}/hub/team/never:v1", server.host()),
        &format!("oci:{}:v1", work.path().join("never").display()),
        Some(&creds),
    );
    assert!(
        err.contains("upstream") && err.contains("cannot be reached"),
        "{err}"
    );
    let pulled = Oci::signed_in(E2E_ADMIN.0, E2E_ADMIN.1)
        .get_manifest(&server.base, "hub/team/never", "v1")
        .await
        .unwrap();
    assert_eq!(pulled.status, StatusCode::NOT_FOUND);
    let error: Value = serde_json::from_slice(&pulled.bytes).unwrap();
    assert_eq!(error["errors"][0]["code"], "MANIFEST_UNKNOWN", "{error}");
    let message = error["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("upstream registry \"upstream\" at http://"),
        "{message}"
    );
}
