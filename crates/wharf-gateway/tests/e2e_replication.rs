//! Replication through the real binary and its Harbor REST API, against
//! Debian's `docker-registry` behind htpasswd Basic auth on loopback:
//! a manual push-based policy (filters, flattening), a pull-based policy
//! back into Wharf, an event-based policy fired by a push, and the bytes
//! counted in `/metrics`.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, E2E_ADMIN, Flavor, Oci, Rng, free_port, random_image};

const USER: &str = "mirror";
const PASSWORD: &str = "mirror-Secret-1";

/// `docker-registry serve` on a free port behind htpasswd; killed on drop.
struct Distribution {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_distribution() -> Option<Distribution> {
    let bin = Path::new("/usr/bin/docker-registry");
    if !bin.exists() || support::tool("htpasswd").is_none() {
        assert!(
            !support::in_ci(),
            "docker-registry and htpasswd must be installed in CI"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success());
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let port = free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
         delete:\n    enabled: true\nauth:\n  htpasswd:\n    realm: e2e\n    path: {}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: e2e\n",
        dir.path().join("data").display(),
        htpasswd.display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Distribution {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let resp = rb
            .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    /// POST, expecting 201; the id at the end of `Location`.
    async fn create(&self, path: &str, body: Value) -> i64 {
        let (status, headers, answer) = self
            .send(
                self.http
                    .post(format!("{}/api/v2.0{path}", self.base))
                    .json(&body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {answer}");
        headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.rsplit('/').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("POST {path}: no id in Location"))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, _, body) = self
            .send(self.http.get(format!("{}/api/v2.0{path}", self.base)))
            .await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Start policy `policy` and wait for its execution to end; the
    /// execution, which must have succeeded.
    async fn run(&self, policy: i64) -> Value {
        let id = self
            .create("/replication/executions", json!({ "policy_id": policy }))
            .await;
        self.wait_execution(id, Duration::from_secs(90)).await
    }

    async fn wait_execution(&self, id: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let execution = self.get(&format!("/replication/executions/{id}")).await;
            match execution["status"].as_str() {
                Some("Succeed") => return execution,
                Some("Failed") | Some("Stopped") => {
                    let tasks = self
                        .get(&format!("/replication/executions/{id}/tasks"))
                        .await;
                    panic!("execution {id} ended badly: {execution}\ntasks: {tasks}");
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} still running: {execution}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Tags of `repo` on the Basic-auth docker-registry.
async fn remote_tags(dist: &Distribution, repo: &str) -> Vec<String> {
    let resp = reqwest::Client::new()
        .get(format!("{}/v2/{repo}/tags/list", dist.base))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    if resp.status() == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    let body: Value = resp.json().await.unwrap();
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_and_event_replication_through_the_api() {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: replication is Wharf's");
        return;
    }
    let Some(dist) = start_distribution() else {
        eprintln!("SKIPPED: docker-registry or htpasswd missing");
        return;
    };
    let server = backend.start().await;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    };
    server.create_project("prod", false).await.unwrap();
    server.create_project("dr", false).await.unwrap();

    let oci = Oci::signed_in(E2E_ADMIN.0, E2E_ADMIN.1);
    let mut rng = Rng::new();
    let v1 = random_image(&mut rng, 2, 64 * 1024, "amd64");
    let v2 = random_image(&mut rng, 1, 32 * 1024, "arm64");
    let dev = random_image(&mut rng, 1, 1024, "amd64");
    oci.push_image(&server.base, "prod/app", "v1", &v1)
        .await
        .unwrap();
    oci.push_image(&server.base, "prod/app", "v2", &v2)
        .await
        .unwrap();
    oci.push_image(&server.base, "prod/app", "dev", &dev)
        .await
        .unwrap();

    // The endpoint: its password is accepted, sealed and never shown again.
    let registry = api
        .create(
            "/registries",
            json!({
                "name": "dr-site", "type": "docker-registry", "url": dist.base,
                "insecure": true,
                "credential": { "type": "basic", "access_key": USER, "access_secret": PASSWORD },
            }),
        )
        .await;
    let shown = api.get(&format!("/registries/{registry}")).await;
    assert!(!shown.to_string().contains(PASSWORD), "{shown}");
    let (status, _, ping) = api
        .send(
            api.http
                .post(format!("{}/api/v2.0/registries/ping", api.base))
                .json(&json!({ "id": registry })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ping}");

    // Push-based: this Wharf → docker-registry, `v*` only, `prod/app` →
    // `mirror/app`.
    let push = api
        .create(
            "/replication/policies",
            json!({
                "name": "to-dr", "enabled": true, "override": true,
                "dest_registry": { "id": registry },
                "dest_namespace": "mirror", "dest_namespace_replace_count": 1,
                "filters": [ { "type": "name", "value": "prod/**" },
                             { "type": "tag", "value": "v*" } ],
                "trigger": { "type": "manual" },
            }),
        )
        .await;
    api.run(push).await;
    assert_eq!(remote_tags(&dist, "mirror/app").await, ["v1", "v2"]);
    let executions = api
        .get(&format!("/replication/executions?policy_id={push}"))
        .await;
    assert_eq!(executions.as_array().map(Vec::len), Some(1), "{executions}");

    // Pull-based: docker-registry → this Wharf's `dr` project.
    let pull = api
        .create(
            "/replication/policies",
            json!({
                "name": "from-dr", "enabled": true, "override": true,
                "src_registry": { "id": registry },
                "dest_namespace": "dr", "dest_namespace_replace_count": 1,
                "filters": [ { "type": "name", "value": "mirror/**" } ],
                "trigger": { "type": "manual" },
            }),
        )
        .await;
    api.run(pull).await;
    let mut pulled = oci.tags(&server.base, "dr/app").await.unwrap();
    pulled.sort();
    assert_eq!(pulled, ["v1", "v2"]);
    let back = oci
        .get_manifest(&server.base, "dr/app", "v1")
        .await
        .unwrap();
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(
        back.bytes, v1.manifest.bytes,
        "the manifest is copied byte for byte"
    );

    // Event-based: a push to `prod` is replicated without anybody asking.
    api.create(
        "/replication/policies",
        json!({
            "name": "on-push", "enabled": true, "override": true,
            "dest_registry": { "id": registry },
            "dest_namespace": "events", "dest_namespace_replace_count": 1,
            "filters": [ { "type": "name", "value": "prod/**" } ],
            "trigger": { "type": "event_based" },
        }),
    )
    .await;
    let v3 = random_image(&mut rng, 1, 16 * 1024, "amd64");
    oci.push_image(&server.base, "prod/app", "v3", &v3)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !remote_tags(&dist, "events/app")
        .await
        .contains(&"v3".to_owned())
    {
        assert!(
            Instant::now() < deadline,
            "the push was not replicated; log:\n{}",
            server.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // What replication moved is counted.
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let copied: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wharf_replication_bytes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wharf_replication_bytes_total in /metrics");
    assert!(copied >= (64 * 1024 * 2) as f64, "{copied}");
}
