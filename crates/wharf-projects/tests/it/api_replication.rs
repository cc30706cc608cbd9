//! The registries and replication API against real Debian docker-registry
//! servers on loopback: registry CRUD with a write-only secret, ping,
//! adapters, policy validation in Harbor's envelope, permissions,
//! executions (start, list, get, tasks, logs, stop) run by a real worker,
//! and event-based triggers fed from the registry's change transaction.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, ResponseError, web};
use bytes::Bytes;
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use sqlx::PgPool;
use wharf_jobs::Jobs;
use wharf_projects::Caller;
use wharf_projects::http::{ApiError, ApiSettings};
use wharf_replication::client::{Manifest, sha256_digest};
use wharf_replication::crypto::SecretKey;
use wharf_replication::policies::{self, JOB_KIND, PolicySpec, ReplicationJob};
use wharf_replication::registries::{Registries, RegistryKind, RegistrySpec};
use wharf_replication::{Endpoint, RegistryClient};

use crate::api_support::{expect_error, id_from_location, json_body, location, text};
use crate::support::TestDb;

const ADMIN_PASSWORD: &str = "Harbor12345";
const USER: &str = "replicator";
const PASSWORD: &str = "s3cret-pass";
const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// docker-registry on loopback (as in wharf-replication's tests).

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

fn start_distribution(basic_auth: bool) -> Distribution {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let auth = if basic_auth {
        let path = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (apache2-utils) must be installed");
        assert!(out.status.success());
        std::fs::write(&path, out.stdout).unwrap();
        format!(
            "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
            path.display()
        )
    } else {
        String::new()
    };
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{auth}http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
        dir.path().join("data").display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Distribution {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

fn client(reg: &Distribution, auth: bool) -> RegistryClient {
    let mut ep = Endpoint::new(&reg.base).unwrap();
    if auth {
        ep = ep.with_basic(USER, PASSWORD);
    }
    RegistryClient::new(ep).unwrap()
}

async fn push_blob(c: &RegistryClient, repo: &str, data: &[u8]) -> Value {
    let data = Bytes::copy_from_slice(data);
    let digest = sha256_digest(&data);
    let chunk: Result<Bytes, reqwest::Error> = Ok(data.clone());
    c.push_blob(
        repo,
        &digest,
        data.len() as u64,
        futures_util::stream::iter(vec![chunk]),
        None,
    )
    .await
    .unwrap();
    json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": data.len()})
}

/// A small image (its config and one layer unique to `repo:tag`).
async fn push_image(c: &RegistryClient, repo: &str, tag: &str) {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"t\":\"{repo}:{tag}\"}}");
    let mut cfg = push_blob(c, repo, config.as_bytes()).await;
    cfg["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let layer = push_blob(c, repo, format!("layer of {repo}:{tag}").as_bytes()).await;
    let doc = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "config": cfg, "layers": [layer]});
    let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap());
    let m = Manifest {
        digest: sha256_digest(&bytes),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes,
    };
    c.put_manifest(repo, tag, &m).await.unwrap();
}

// ---------------------------------------------------------------------------
// The API with the replication app data.

struct App {
    base: String,
    http: reqwest::Client,
    db: TestDb,
    registries: Registries,
    server: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        let server = self.server.clone();
        let thread = self.thread.take();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(server.stop(false));
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        })
        .join()
        .ok();
    }
}

impl App {
    async fn spawn() -> App {
        let db = TestDb::new().await;
        wharf_projects::ensure_admin(&db.pool, Some(ADMIN_PASSWORD))
            .await
            .unwrap();
        wharf_projects::ensure_library_project(&db.pool)
            .await
            .unwrap();
        // The queue's schema: starting an execution enqueues its job.
        Jobs::start(db.pool.clone()).await.unwrap();
        let key = Arc::new(SecretKey::from_base64(&SecretKey::generate_base64()).unwrap());
        let settings = ApiSettings {
            external_url: Some("https://wharf.example.com".into()),
            robot_prefix: "robot$".into(),
            default_storage_limit: -1,
            ..Default::default()
        };
        let options = (*db.pool.connect_options()).clone();
        let server_key = key.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .expect("server pool");
                let registries = web::Data::new(Registries::new(pool.clone(), server_key));
                let pool = web::Data::new(pool);
                let settings = web::Data::new(settings);
                let server = actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(pool.clone())
                        .app_data(settings.clone())
                        .app_data(registries.clone())
                        .service(
                            web::scope("/api/v2.0")
                                .wrap(from_fn(identify))
                                .configure(wharf_projects::http::configure),
                        )
                })
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("report port");
                server.await.expect("server runs");
            })
        });
        let (port, server) = rx.recv().expect("test server failed to start");
        let registries = Registries::new(db.pool.clone(), key);
        App {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            db,
            registries,
            server,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v2.0{path}", self.base)
    }

    fn admin(&self, rb: RequestBuilder) -> RequestBuilder {
        rb.basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.admin(self.http.get(self.url(path)))
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.admin(self.http.post(self.url(path)))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn put(&self, path: &str, body: Value) -> reqwest::Response {
        self.admin(self.http.put(self.url(path)))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.admin(self.http.delete(self.url(path)))
            .send()
            .await
            .unwrap()
    }

    /// Create through the API; the new id.
    async fn create(&self, path: &str, body: Value) -> i64 {
        let resp = self.post(path, body.clone()).await;
        let status = resp.status();
        let loc = location(&resp);
        assert_eq!(status, 201, "POST {path} {body}: {}", text(resp).await);
        id_from_location(&loc)
    }

    /// A user who is not an administrator, with their password.
    async fn user(&self, name: &str) -> String {
        let password = format!("Pw1-{name}-Secret");
        let resp = self
            .post(
                "/users",
                json!({"username": name, "email": format!("{name}@example.com"),
                       "realname": name, "comment": "", "password": password}),
            )
            .await;
        assert_eq!(resp.status(), 201, "{}", text(resp).await);
        password
    }

    fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

/// Basic credentials checked with the real `identify_basic`, as the
/// shared test server does (the real middleware lives in wharf-auth).
async fn identify(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    use base64::Engine as _;
    let creds = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(n, p)| (n.to_owned(), p.to_owned())));
    if let Some((name, secret)) = creds {
        let pool = req.app_data::<web::Data<PgPool>>().unwrap().clone();
        match wharf_projects::identify_basic(&pool, "robot$", &name, &secret).await {
            Ok(Ok(principal)) => {
                req.extensions_mut().insert(Caller {
                    principal,
                    client_addr: None,
                });
            }
            Ok(Err(_)) => {
                let refused = ApiError::unauthorized("invalid credentials").error_response();
                return Ok(req.into_response(refused));
            }
            Err(e) => return Ok(req.into_response(ApiError::from(e).error_response())),
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

async fn wait_final(app: &App, id: i64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let e = json_body(app.get(&format!("/replication/executions/{id}")).await).await;
        if e["status"] != "InProgress" {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "execution {id} still running: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn registry_crud_ping_and_a_secret_never_returned() {
    let app = App::spawn().await;
    let dist = start_distribution(true);

    let adapters = json_body(app.get("/replication/adapters").await).await;
    assert_eq!(adapters, json!(["docker-registry", "harbor", "wharf"]));
    let infos = json_body(app.get("/replication/adapterinfos").await).await;
    assert_eq!(
        infos["docker-registry"]["endpoint_pattern"]["endpoint_type"],
        "EndpointPatternTypeStandard"
    );

    let body = json!({"name": "dr", "type": "docker-registry", "url": dist.base,
                      "description": "disaster recovery", "insecure": false,
                      "credential": {"type": "basic", "access_key": USER, "access_secret": PASSWORD}});
    let id = app.create("/registries", body.clone()).await;
    expect_error(app.post("/registries", body.clone()).await, 409, "CONFLICT").await;
    let mut bad = body.clone();
    bad["name"] = json!("other");
    bad["type"] = json!("quay");
    expect_error(app.post("/registries", bad).await, 400, "BAD_REQUEST").await;
    let mut bad_url = body.clone();
    bad_url["name"] = json!("other");
    bad_url["url"] = json!("not a url");
    expect_error(app.post("/registries", bad_url).await, 400, "BAD_REQUEST").await;

    let raw = app.get(&format!("/registries/{id}")).await;
    assert_eq!(raw.status(), 200);
    let raw = text(raw).await;
    assert!(!raw.contains(PASSWORD), "the secret leaked: {raw}");
    let got: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(got["name"], "dr");
    assert_eq!(got["type"], "docker-registry");
    assert_eq!(got["credential"]["access_key"], USER);
    assert_eq!(got["status"], "unknown");
    let sealed: Option<String> =
        sqlx::query_scalar("SELECT access_secret FROM replication_registries WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(!sealed.unwrap().contains(PASSWORD), "stored in the clear");

    // Ping by id records the health; inline settings are tried as given.
    let resp = app.post("/registries/ping", json!({"id": id})).await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    let list = app.get("/registries?q=name%3D~d").await;
    assert_eq!(list.headers()["x-total-count"], "1");
    let list = text(list).await;
    assert!(!list.contains(PASSWORD));
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap()[0]["status"],
        "healthy"
    );
    let resp = app
        .post(
            "/registries/ping",
            json!({"type": "docker-registry", "url": dist.base,
                   "access_key": USER, "access_secret": "wrong"}),
        )
        .await;
    expect_error(resp, 400, "BAD_REQUEST").await;
    let resp = app
        .post(
            "/registries/ping",
            json!({"type": "docker-registry", "url": dist.base,
                   "access_key": USER, "access_secret": PASSWORD}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    expect_error(
        app.post("/registries/ping", json!({"id": 999})).await,
        404,
        "NOT_FOUND",
    )
    .await;

    // An update without a secret keeps it; a wrong one makes it unhealthy.
    let resp = app
        .put(
            &format!("/registries/{id}"),
            json!({"description": "DR site"}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    let resp = app.post("/registries/ping", json!({"id": id})).await;
    assert_eq!(resp.status(), 200, "the stored secret was kept");
    let resp = app
        .put(
            &format!("/registries/{id}"),
            json!({"access_secret": "changed"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    expect_error(
        app.post("/registries/ping", json!({"id": id})).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    let got = json_body(app.get(&format!("/registries/{id}")).await).await;
    assert_eq!(got["status"], "unhealthy");
    assert_eq!(got["description"], "DR site");

    let info = json_body(app.get(&format!("/registries/{id}/info")).await).await;
    assert_eq!(info["type"], "docker-registry");
    assert!(
        info["supported_triggers"]
            .as_array()
            .unwrap()
            .contains(&json!("scheduled"))
    );

    // In use by a policy: 412 until the policy goes.
    let policy = app
        .create(
            "/replication/policies",
            json!({"name": "to-dr", "dest_registry": {"id": id}, "trigger": {"type": "manual"}}),
        )
        .await;
    expect_error(
        app.delete(&format!("/registries/{id}")).await,
        412,
        "PRECONDITION",
    )
    .await;
    assert_eq!(
        app.delete(&format!("/replication/policies/{policy}"))
            .await
            .status(),
        200
    );
    assert_eq!(app.delete(&format!("/registries/{id}")).await.status(), 200);
    expect_error(
        app.get(&format!("/registries/{id}")).await,
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn only_system_administrators() {
    let app = App::spawn().await;
    let password = app.user("dev").await;
    for (method, path) in [
        ("GET", "/registries"),
        ("POST", "/registries"),
        ("GET", "/replication/adapters"),
        ("GET", "/replication/policies"),
        ("POST", "/replication/policies"),
        ("GET", "/replication/executions"),
        ("POST", "/replication/executions"),
    ] {
        let rb = |rb: RequestBuilder| match method {
            "POST" => rb.json(&json!({})),
            _ => rb,
        };
        let url = app.url(path);
        let anonymous = rb(app.http.request(method.parse().unwrap(), &url))
            .send()
            .await
            .unwrap();
        expect_error(anonymous, 401, "UNAUTHORIZED").await;
        let user = rb(app.http.request(method.parse().unwrap(), &url))
            .basic_auth("dev", Some(&password))
            .send()
            .await
            .unwrap();
        expect_error(user, 403, "FORBIDDEN").await;
    }
}

#[tokio::test]
async fn policy_crud_in_harbors_shape_and_its_validation() {
    let app = App::spawn().await;
    let dist = start_distribution(false);
    let reg = app
        .create(
            "/registries",
            json!({"name": "hub", "type": "docker-registry", "url": dist.base}),
        )
        .await;
    let other = app
        .create(
            "/registries",
            json!({"name": "hub2", "type": "harbor", "url": dist.base}),
        )
        .await;
    let body = json!({
        "name": "push-prod", "description": "prod to hub",
        "dest_registry": {"id": reg}, "dest_namespace": "mirror",
        "dest_namespace_replace_count": 1,
        "trigger": {"type": "scheduled", "trigger_settings": {"cron": "0 0 2 * * *"}},
        "filters": [
            {"type": "name", "value": "library/**"},
            {"type": "tag", "value": "v*", "decoration": "excludes"},
            {"type": "label", "value": ["prod"], "decoration": "matches"},
            {"type": "resource", "value": "image"}
        ],
        "replicate_deletion": true, "override": false, "enabled": true,
        "speed": 512, "copy_by_chunk": true
    });
    let id = app.create("/replication/policies", body.clone()).await;
    let got = json_body(app.get(&format!("/replication/policies/{id}")).await).await;
    assert_eq!(got["name"], "push-prod");
    assert_eq!(got["src_registry"]["id"], 0);
    assert_eq!(got["src_registry"]["name"], "Local");
    assert_eq!(got["dest_registry"]["id"], reg);
    assert_eq!(got["dest_registry"]["name"], "hub");
    assert_eq!(got["dest_namespace"], "mirror");
    assert_eq!(got["dest_namespace_replace_count"], 1);
    assert_eq!(got["trigger"]["type"], "scheduled");
    assert_eq!(got["trigger"]["trigger_settings"]["cron"], "0 0 2 * * *");
    assert_eq!(got["replicate_deletion"], true);
    assert_eq!(got["override"], false);
    assert_eq!(got["speed"], 512);
    assert_eq!(got["copy_by_chunk"], true);
    let filters = got["filters"].as_array().unwrap();
    assert!(
        filters.contains(&json!({"type": "name", "value": "library/**", "decoration": "matches"}))
    );
    assert!(filters.contains(&json!({"type": "tag", "value": "v*", "decoration": "excludes"})));
    assert!(
        filters.contains(&json!({"type": "label", "value": ["prod"], "decoration": "matches"}))
    );
    assert!(filters.contains(&json!({"type": "resource", "value": "image"})));
    // The schedule follows the trigger.
    let schedule = wharf_jobs::get_schedule(app.pool(), &policies::schedule_name(id))
        .await
        .unwrap()
        .expect("scheduled");
    assert_eq!(schedule.kind, JOB_KIND);

    expect_error(
        app.post("/replication/policies", body.clone()).await,
        409,
        "CONFLICT",
    )
    .await;
    let list = app.get("/replication/policies?q=name%3D~push").await;
    assert_eq!(list.headers()["x-total-count"], "1");

    // Harbor's rules, each a 400 in the envelope.
    let bad = |patch: Value| {
        let mut b = body.clone();
        b["name"] = json!("bad");
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (patch, why) in [
        (json!({"dest_registry": {"id": 0}}), "both local"),
        (
            json!({"src_registry": {"id": reg}, "dest_registry": {"id": other}}),
            "both remote",
        ),
        (json!({"dest_registry": {"id": 999}}), "missing registry"),
        (
            json!({"trigger": {"type": "scheduled", "trigger_settings": {"cron": "nope"}}}),
            "cron",
        ),
        (json!({"trigger": {"type": "sometimes"}}), "trigger type"),
        (
            json!({"filters": [{"type": "name", "value": "[abc"}]}),
            "pattern",
        ),
        (
            json!({"filters": [{"type": "colour", "value": "red"}]}),
            "filter type",
        ),
        (
            json!({"filters": [{"type": "resource", "value": "chart"}]}),
            "resource",
        ),
        (json!({"speed": -5}), "speed"),
        (json!({"name": ""}), "empty name"),
        (
            json!({"src_registry": {"id": reg}, "dest_registry": null,
                   "trigger": {"type": "event_based"}, "filters": []}),
            "event-based pull",
        ),
        (
            json!({"src_registry": {"id": reg}, "dest_registry": null, "trigger": {"type": "manual"}}),
            "labels on a pull",
        ),
    ] {
        let resp = app.post("/replication/policies", bad(patch)).await;
        let status = resp.status();
        let body = text(resp).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(body.contains("BAD_REQUEST"), "{why}: {body}");
    }

    // Update: to a manual pull-based policy; the schedule goes.
    let update = json!({
        "name": "pull-hub", "src_registry": {"id": reg}, "dest_registry": {"id": 0},
        "trigger": {"type": "manual"}, "filters": [{"type": "tag", "value": "{1.0,2.0}"}],
        "enabled": true
    });
    let resp = app
        .put(&format!("/replication/policies/{id}"), update)
        .await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    let got = json_body(app.get(&format!("/replication/policies/{id}")).await).await;
    assert_eq!(got["name"], "pull-hub");
    assert_eq!(got["src_registry"]["id"], reg);
    assert_eq!(got["dest_registry"]["name"], "Local");
    assert_eq!(got["dest_registry"]["url"], "https://wharf.example.com");
    assert_eq!(got["trigger"]["type"], "manual");
    assert_eq!(got["override"], true);
    assert_eq!(got["speed"], -1);
    assert!(
        wharf_jobs::get_schedule(app.pool(), &policies::schedule_name(id))
            .await
            .unwrap()
            .is_none()
    );
    expect_error(
        app.put(
            "/replication/policies/999",
            json!({"name": "x", "dest_registry": {"id": reg}}),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(app.get("/replication/policies/999").await, 404, "NOT_FOUND").await;

    // A waiting execution holds the policy.
    let exec = app
        .create("/replication/executions", json!({"policy_id": id}))
        .await;
    let waiting = app
        .get(&format!(
            "/replication/executions?policy_id={id}&status=InProgress"
        ))
        .await;
    assert_eq!(waiting.headers()["x-total-count"], "1");
    expect_error(
        app.delete(&format!("/replication/policies/{id}")).await,
        412,
        "PRECONDITION",
    )
    .await;
    assert_eq!(
        app.put(&format!("/replication/executions/{exec}"), json!({}))
            .await
            .status(),
        200
    );
    let stopped = json_body(app.get(&format!("/replication/executions/{exec}")).await).await;
    assert_eq!(stopped["status"], "Stopped");
    assert_eq!(stopped["trigger"], "manual");
    assert_eq!(
        app.delete(&format!("/replication/policies/{id}"))
            .await
            .status(),
        200
    );
    expect_error(
        app.delete(&format!("/replication/policies/{id}")).await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.post("/replication/executions", json!({"policy_id": id}))
            .await,
        400,
        "BAD_REQUEST",
    )
    .await;
}

#[tokio::test]
async fn executions_and_tasks_of_a_real_copy() {
    let app = App::spawn().await;
    let src = start_distribution(false);
    let dst = start_distribution(true);
    let src_client = client(&src, false);
    push_image(&src_client, "prod/api", "v1").await;
    push_image(&src_client, "prod/api", "v2").await;
    push_image(&src_client, "prod/api", "dev").await;
    push_image(&src_client, "test/web", "v1").await;

    let spec = |name: &str, url: &str, auth: bool| RegistrySpec {
        name: name.into(),
        kind: RegistryKind::DockerRegistry,
        url: url.into(),
        description: String::new(),
        access_key: auth.then(|| USER.to_owned()),
        access_secret: auth.then(|| PASSWORD.to_owned()),
        insecure: false,
    };
    let src_id = app
        .registries
        .create(&spec("src", &src.base, false))
        .await
        .unwrap()
        .id;
    let dst_id = app
        .registries
        .create(&spec("dst", &dst.base, true))
        .await
        .unwrap()
        .id;
    // Remote to remote: the library allows it (the REST API does not), and
    // the test server has no local /v2.
    let policy = policies::create_policy(
        app.pool(),
        &PolicySpec {
            name: "prod-v".into(),
            src_registry_id: Some(src_id),
            dest_registry_id: Some(dst_id),
            name_filter: Some("prod/**".into()),
            tag_filter: Some("v*".into()),
            override_tags: true,
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let mut jobs = Jobs::start(app.pool().clone()).await.unwrap();
    let copied = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = copied.clone();
    jobs.register(
        JOB_KIND,
        ReplicationJob::new(app.registries.clone()).with_bytes_observer(Arc::new(move |n| {
            seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })),
    );
    drop(jobs.run_worker(1, std::future::pending()));

    let exec = app
        .create("/replication/executions", json!({"policy_id": policy.id}))
        .await;
    let done = wait_final(&app, exec).await;
    assert_eq!(done["status"], "Succeed", "{done}");
    assert_eq!(done["policy_id"], policy.id);
    assert_eq!(done["trigger"], "manual");
    assert_eq!(done["total"], 2);
    assert_eq!(done["succeed"], 2);
    assert_eq!(done["failed"], 0);
    assert!(done["end_time"].is_string());
    assert!(
        copied.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "bytes observed"
    );

    let tasks = app
        .get(&format!("/replication/executions/{exec}/tasks"))
        .await;
    assert_eq!(tasks.headers()["x-total-count"], "2");
    let tasks = json_body(tasks).await;
    let resources: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["src_resource"].as_str().unwrap())
        .collect();
    assert_eq!(resources, ["prod/api:v1", "prod/api:v2"]);
    assert_eq!(tasks[0]["status"], "Succeed");
    assert_eq!(tasks[0]["operation"], "copy");
    assert!(tasks[0]["bytes_copied"].as_i64().unwrap() > 0);
    let task_id = tasks[0]["id"].as_i64().unwrap();
    let log = app
        .get(&format!(
            "/replication/executions/{exec}/tasks/{task_id}/log"
        ))
        .await;
    assert_eq!(log.status(), 200);
    let log = text(log).await;
    assert!(
        log.contains("prod/api:v1") && log.contains("Succeed"),
        "{log}"
    );
    expect_error(
        app.get(&format!("/replication/executions/{exec}/tasks/999999/log"))
            .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert!(
        client(&dst, true)
            .head_manifest("prod/api", "v2")
            .await
            .unwrap()
            .is_some()
    );

    let listed = app
        .get(&format!(
            "/replication/executions?policy_id={}&status=Succeed",
            policy.id
        ))
        .await;
    assert_eq!(listed.headers()["x-total-count"], "1");
    let listed = app.get("/replication/executions?trigger=scheduled").await;
    assert_eq!(listed.headers()["x-total-count"], "0");
    expect_error(
        app.get("/replication/executions?status=Bogus").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        app.get("/replication/executions/999999").await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.put("/replication/executions/999999", json!({})).await,
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_push_starts_event_based_policies_only() {
    use wharf_registry::seams::{EventSink, Principal, RegistryEvent};
    let app = App::spawn().await;
    let dist = start_distribution(false);
    let reg = app
        .create(
            "/registries",
            json!({"name": "dr", "type": "docker-registry", "url": dist.base}),
        )
        .await;
    let policy = |name: &str, trigger: &str, extra: Value| {
        let mut b = json!({"name": name, "dest_registry": {"id": reg},
                           "trigger": {"type": trigger}, "enabled": true,
                           "filters": [{"type": "name", "value": "library/**"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let on_push = app
        .create(
            "/replication/policies",
            policy("on-push", "event_based", json!({})),
        )
        .await;
    let manual = app
        .create(
            "/replication/policies",
            policy("by-hand", "manual", json!({})),
        )
        .await;
    let with_deletion = app
        .create(
            "/replication/policies",
            policy(
                "mirror-deletes",
                "event_based",
                json!({"replicate_deletion": true}),
            ),
        )
        .await;
    let disabled = app
        .create(
            "/replication/policies",
            policy("off", "event_based", json!({"enabled": false})),
        )
        .await;
    let (sink, _writer) = wharf_projects::audit::RegistryAudit::spawn(app.pool().clone());
    let actor = Principal {
        name: Some("ci".into()),
        client_addr: None,
    };
    let repository = |name: &str| wharf_oci::RepositoryName::parse(name).unwrap();
    let digest = wharf_oci::Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap();
    let app_ref = &app;
    let executions_of = |policy: i64| async move {
        let resp = app_ref
            .get(&format!(
                "/replication/executions?policy_id={policy}&trigger=event_based"
            ))
            .await;
        json_body(resp).await.as_array().unwrap().clone()
    };

    // Rolled back with its push: nothing.
    let pushed = |repo: &str, tag: &str| RegistryEvent::ManifestPushed {
        repository: repository(repo),
        digest: digest.clone(),
        tag: Some(tag.into()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 10,
        actor: actor.clone(),
    };
    let mut tx = app.pool().begin().await.unwrap();
    sink.record_change(&mut tx, &pushed("library/app", "v1"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(executions_of(on_push).await.is_empty());

    let mut tx = app.pool().begin().await.unwrap();
    sink.record_change(&mut tx, &pushed("library/app", "v1"))
        .await
        .unwrap();
    sink.record_change(&mut tx, &pushed("other/app", "v1"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let started = executions_of(on_push).await;
    assert_eq!(started.len(), 1, "only library/** matches: {started:?}");
    assert_eq!(started[0]["trigger"], "event_based");
    assert_eq!(executions_of(with_deletion).await.len(), 1);
    assert!(executions_of(manual).await.is_empty());
    assert!(executions_of(disabled).await.is_empty());
    let params: Value = sqlx::query_scalar("SELECT parameters FROM job_executions WHERE id = $1")
        .bind(started[0]["id"].as_i64().unwrap())
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(
        params["resource"],
        json!({"repository": "library/app", "reference": "v1", "deleted": false})
    );

    // Deletions start only the policy that replicates them.
    let mut tx = app.pool().begin().await.unwrap();
    sink.record_change(
        &mut tx,
        &RegistryEvent::TagDeleted {
            repository: repository("library/app"),
            tag: "v1".into(),
            actor: actor.clone(),
        },
    )
    .await
    .unwrap();
    sink.record_change(
        &mut tx,
        &RegistryEvent::ManifestDeleted {
            repository: repository("library/app"),
            digest: digest.clone(),
            actor: actor.clone(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(executions_of(on_push).await.len(), 1);
    let deletions = executions_of(with_deletion).await;
    assert_eq!(deletions.len(), 3, "{deletions:?}");
}

#[test]
fn the_openapi_document_has_harbors_registry_and_replication_operations() {
    let doc = serde_json::to_value(wharf_projects::http::openapi()).unwrap();
    let swagger = std::fs::read_to_string("/work/shared/reference/harbor-swagger.yaml").ok();
    for (method, path, id) in [
        ("get", "/registries", "listRegistries"),
        ("post", "/registries", "createRegistry"),
        ("post", "/registries/ping", "pingRegistry"),
        ("get", "/registries/{id}", "getRegistry"),
        ("put", "/registries/{id}", "updateRegistry"),
        ("delete", "/registries/{id}", "deleteRegistry"),
        ("get", "/registries/{id}/info", "getRegistryInfo"),
        ("get", "/replication/adapters", "listRegistryProviderTypes"),
        (
            "get",
            "/replication/adapterinfos",
            "listRegistryProviderInfos",
        ),
        ("get", "/replication/policies", "listReplicationPolicies"),
        ("post", "/replication/policies", "createReplicationPolicy"),
        ("get", "/replication/policies/{id}", "getReplicationPolicy"),
        (
            "put",
            "/replication/policies/{id}",
            "updateReplicationPolicy",
        ),
        (
            "delete",
            "/replication/policies/{id}",
            "deleteReplicationPolicy",
        ),
        (
            "get",
            "/replication/executions",
            "listReplicationExecutions",
        ),
        ("post", "/replication/executions", "startReplication"),
        (
            "get",
            "/replication/executions/{id}",
            "getReplicationExecution",
        ),
        ("put", "/replication/executions/{id}", "stopReplication"),
        (
            "get",
            "/replication/executions/{id}/tasks",
            "listReplicationTasks",
        ),
        (
            "get",
            "/replication/executions/{id}/tasks/{task_id}/log",
            "getReplicationLog",
        ),
    ] {
        assert_eq!(
            doc["paths"][path][method]["operationId"], id,
            "{method} {path}"
        );
        if let Some(swagger) = &swagger {
            assert!(
                swagger.contains(&format!("operationId: {id}\n")),
                "{id} is not one of Harbor's operations"
            );
        }
    }
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tags.contains(&"registry") && tags.contains(&"replication"));
}

/// "This Wharf" for the worker: a docker-registry (the test server has no
/// `/v2` of its own).
struct Local(String);

impl wharf_replication::registries::LocalRegistry for Local {
    fn client(&self) -> Result<RegistryClient, wharf_replication::ReplicationError> {
        RegistryClient::new(Endpoint::new(&self.0)?)
    }
}

#[tokio::test]
async fn a_push_based_policy_made_through_the_api_runs() {
    let app = App::spawn().await;
    let local = start_distribution(false);
    let dst = start_distribution(true);
    let src = client(&local, false);
    push_image(&src, "library/api", "v1.0").await;
    push_image(&src, "library/api", "v2.0").await;
    push_image(&src, "library/api", "v3.0").await;
    push_image(&src, "other/api", "v1.0").await;
    let reg = app
        .create(
            "/registries",
            json!({"name": "dr", "type": "docker-registry", "url": dst.base,
                   "credential": {"type": "basic", "access_key": USER, "access_secret": PASSWORD}}),
        )
        .await;
    let policy = app
        .create(
            "/replication/policies",
            json!({"name": "to-dr", "dest_registry": {"id": reg}, "dest_namespace": "dr",
                   "filters": [{"type": "name", "value": "library/**"},
                               {"type": "tag", "value": "{v1.0,v2.0}"}],
                   "trigger": {"type": "manual"}, "override": true, "enabled": true,
                   "copy_by_chunk": true, "speed": 100000}),
        )
        .await;
    let mut jobs = Jobs::start(app.pool().clone()).await.unwrap();
    jobs.register(
        JOB_KIND,
        ReplicationJob::new(
            app.registries
                .clone()
                .with_local(Arc::new(Local(local.base.clone()))),
        ),
    );
    drop(jobs.run_worker(1, std::future::pending()));
    let exec = app
        .create("/replication/executions", json!({"policy_id": policy}))
        .await;
    let done = wait_final(&app, exec).await;
    assert_eq!(done["status"], "Succeed", "{done}");
    assert_eq!(done["total"], 2);
    let tasks = json_body(
        app.get(&format!("/replication/executions/{exec}/tasks"))
            .await,
    )
    .await;
    let pairs: Vec<(&str, &str)> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["src_resource"].as_str().unwrap(),
                t["dst_resource"].as_str().unwrap(),
            )
        })
        .collect();
    // Harbor's default replace count (-1) with a namespace: flattened.
    assert_eq!(
        pairs,
        [
            ("library/api:v1.0", "dr/api:v1.0"),
            ("library/api:v2.0", "dr/api:v2.0")
        ]
    );
    let d = client(&dst, true);
    assert!(d.head_manifest("dr/api", "v2.0").await.unwrap().is_some());
    assert!(d.head_manifest("dr/api", "v3.0").await.unwrap().is_none());
}
