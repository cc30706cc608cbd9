//! The `/api/v2.0` service on a random port for API tests: a fresh database
//! (see [`TestDb`]) with `admin` and `library`, the real handlers of
//! [`wharf_projects::http`], and a real HTTP client.
//!
//! The server runs on a thread with its own actix system and its own pool
//! on the test database, so the test's runtime and the server's never share
//! connections.

#![allow(dead_code)]

use std::sync::mpsc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, ResponseError, web};
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use sqlx::PgPool;
use wharf_projects::audit::{AuditLog, AuditQuery};
use wharf_projects::http::{ApiError, ApiSettings};
use wharf_projects::{Caller, Page, Role};

use crate::support::TestDb;

/// The password `admin` is created with.
pub const ADMIN_PASSWORD: &str = "Harbor12345";

/// The robot login prefix the test server uses (Harbor's default).
pub const ROBOT_PREFIX: &str = "robot$";

/// A robot permission for [`ApiApp::robot`]: kind (`system` or `project`),
/// namespace (`/`, a project name or `*`) and the (resource, action) pairs.
pub type Grant<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A running API server and what a test needs to talk to it.
pub struct ApiApp {
    /// `http://127.0.0.1:<port>` (no path).
    pub base: String,
    pub client: reqwest::Client,
    /// The test database; `db.pool` is for checking what the API wrote.
    pub db: TestDb,
    pub admin_password: String,
    /// The id of the `library` project.
    pub library_id: i64,
    /// The settings the server was given (robot prefix `robot$`).
    pub settings: ApiSettings,
    /// The registry's blob directory, when started by
    /// [`ApiApp::spawn_with_registry`] (kept alive with the app).
    pub storage: Option<tempfile::TempDir>,
    server: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiApp {
    /// A fresh database with `admin` (password [`ADMIN_PASSWORD`]) and the
    /// public `library` project, and the API listening on 127.0.0.1.
    pub async fn spawn() -> ApiApp {
        Self::spawn_with(|_| {}).await
    }

    /// [`ApiApp::spawn`] with the server's settings adjusted by `configure`
    /// first (a default storage limit, ...).
    pub async fn spawn_with(configure: impl FnOnce(&mut ApiSettings)) -> ApiApp {
        Self::spawn_inner(configure, false).await
    }

    /// [`ApiApp::spawn`] plus a real registry: `/v2` on the same server
    /// (open to everyone: tests push and pull through it without tokens),
    /// with the project admission (quota, immutability) and the audit sink
    /// whose pull batches also record pull times, and the registry as app
    /// data for the API's artifact changes.
    pub async fn spawn_with_registry() -> ApiApp {
        Self::spawn_inner(|_| {}, true).await
    }

    async fn spawn_inner(configure: impl FnOnce(&mut ApiSettings), with_registry: bool) -> ApiApp {
        let db = TestDb::new().await;
        wharf_projects::ensure_admin(&db.pool, Some(ADMIN_PASSWORD))
            .await
            .expect("admin created");
        let library = wharf_projects::ensure_library_project(&db.pool)
            .await
            .expect("library created");
        let mut settings = ApiSettings {
            external_url: None,
            version: "v2.16.0-wharf-test".into(),
            storage_provider: "filesystem".into(),
            robot_prefix: ROBOT_PREFIX.into(),
            default_storage_limit: -1,
        };
        configure(&mut settings);
        let options = (*db.pool.connect_options()).clone();
        let server_settings = settings.clone();
        let storage = with_registry.then(|| tempfile::tempdir().expect("blob directory"));
        let storage_root = storage.as_ref().map(|d| d.path().to_path_buf());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await
                    .expect("server pool");
                let registry = match storage_root {
                    Some(root) => Some(test_registry(pool.clone(), root).await),
                    None => None,
                };
                let pool = web::Data::new(pool);
                let settings = web::Data::new(server_settings);
                let server = actix_web::HttpServer::new(move || {
                    let registry = registry.clone();
                    actix_web::App::new()
                        .app_data(pool.clone())
                        .app_data(settings.clone())
                        .configure(move |cfg| {
                            if let Some(registry) = registry {
                                registry.configure(cfg);
                                cfg.app_data(web::Data::new(registry));
                            }
                        })
                        .service(
                            web::scope("/api/v2.0")
                                .wrap(from_fn(identify))
                                .configure(wharf_projects::http::configure),
                        )
                })
                .workers(2)
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
        ApiApp {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            db,
            admin_password: ADMIN_PASSWORD.into(),
            library_id: library.id,
            settings,
            storage,
            server,
            thread: Some(thread),
        }
    }

    /// The absolute URL of `path`, which is relative to `/api/v2.0`
    /// (`"/users"`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v2.0{}", self.base, path)
    }

    /// `rb` with `admin`'s Basic credentials.
    pub fn as_admin(&self, rb: RequestBuilder) -> RequestBuilder {
        rb.basic_auth("admin", Some(&self.admin_password))
    }

    /// `rb` with someone's Basic credentials (a user or a robot).
    pub fn as_basic(&self, rb: RequestBuilder, name: &str, secret: &str) -> RequestBuilder {
        rb.basic_auth(name, Some(secret))
    }

    /// Create a user through the API as `admin` (e-mail
    /// `<username>@example.com`) and return its id and password.
    pub async fn create_user(&self, username: &str) -> (i64, String) {
        let password = format!("Pw1-{username}-Secret");
        let resp = self
            .as_admin(self.client.post(self.url("/users")))
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "realname": username,
                "comment": "",
                "password": password,
            }))
            .send()
            .await
            .expect("POST /users");
        let status = resp.status();
        let location = location(&resp);
        assert_eq!(status, 201, "create user {username}: {}", text(resp).await);
        (id_from_location(&location), password)
    }

    /// Create a project through the API as `admin` and return its id.
    pub async fn create_project(&self, name: &str, public: bool) -> i64 {
        let resp = self
            .as_admin(self.client.post(self.url("/projects")))
            .json(&json!({ "project_name": name, "metadata": { "public": public.to_string() } }))
            .send()
            .await
            .expect("POST /projects");
        let status = resp.status();
        let location = location(&resp);
        assert_eq!(status, 201, "create project {name}: {}", text(resp).await);
        id_from_location(&location)
    }

    /// Make a user a member of a project through the API as `admin`; returns
    /// the membership id.
    pub async fn add_member(&self, project_id: i64, user_id: i64, role: Role) -> i64 {
        let resp = self
            .as_admin(
                self.client
                    .post(self.url(&format!("/projects/{project_id}/members"))),
            )
            .json(&json!({ "role_id": role.id(), "member_user": { "user_id": user_id } }))
            .send()
            .await
            .expect("POST members");
        let status = resp.status();
        let location = location(&resp);
        assert_eq!(status, 201, "add member: {}", text(resp).await);
        id_from_location(&location)
    }

    /// Create a robot directly in the database (not through `/robots`) with
    /// `permissions` as (kind, namespace, [(resource, action)]); returns its
    /// login name and secret.
    pub async fn robot(&self, name: &str, permissions: &[Grant<'_>]) -> (String, String) {
        use wharf_projects::robots::{NewRobot, PermissionSpec, RobotAccess, RobotLevel};
        let level = if permissions.iter().any(|(kind, _, _)| *kind == "system") {
            RobotLevel::System
        } else {
            RobotLevel::Project
        };
        let admin = wharf_projects::get_user_by_name(self.pool(), "admin")
            .await
            .expect("admin");
        let new = NewRobot {
            name: name.to_owned(),
            description: String::new(),
            level,
            duration_days: -1,
            disabled: false,
            permissions: permissions
                .iter()
                .map(|(kind, namespace, access)| PermissionSpec {
                    kind: (*kind).to_owned(),
                    namespace: (*namespace).to_owned(),
                    access: access
                        .iter()
                        .map(|(resource, action)| RobotAccess {
                            resource: (*resource).to_owned(),
                            action: (*action).to_owned(),
                        })
                        .collect(),
                })
                .collect(),
            creator_type: "local".into(),
            creator_ref: admin.id,
        };
        let created = wharf_projects::robots::create_robot(self.pool(), &new)
            .await
            .expect("robot created");
        (created.robot.login_name(ROBOT_PREFIX), created.secret)
    }

    /// Every audit entry, oldest first.
    pub async fn audit_entries(&self) -> Vec<AuditLog> {
        let query = AuditQuery {
            oldest_first: true,
            page: Page {
                page: 1,
                page_size: Page::MAX_SIZE,
            },
            ..AuditQuery::default()
        };
        wharf_projects::audit::list(&self.db.pool, &query)
            .await
            .expect("audit entries")
            .items
    }

    /// The newest audit entry of `resource_type`, if any.
    pub async fn last_audit(&self, resource_type: &str) -> Option<AuditLog> {
        self.audit_entries()
            .await
            .into_iter()
            .rev()
            .find(|e| e.resource_type == resource_type)
    }

    /// The database pool of the test (not the server's).
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

impl Drop for ApiApp {
    fn drop(&mut self) {
        let server = self.server.clone();
        let thread = self.thread.take();
        // Drop may run inside the test's runtime, which cannot be blocked on:
        // stop the server from a thread of our own, before the database goes.
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

/// A registry on `pool` storing blobs under `root`, with Wharf's admission
/// and audit sink (its pull writer runs on the server's runtime).
async fn test_registry(pool: PgPool, root: std::path::PathBuf) -> wharf_registry::Registry {
    use std::sync::Arc;
    use wharf_projects::admission::ProjectAdmission;
    use wharf_registry::{Registry, RegistryConfig};
    use wharf_store::{BlobStore, StorageConfig};
    let store = BlobStore::from_config(&StorageConfig::Filesystem { root })
        .await
        .expect("blob store");
    let (audit, _writer) = wharf_projects::audit::RegistryAudit::spawn(pool.clone());
    Registry::new(pool.clone(), store, RegistryConfig::default())
        .with_admission(Arc::new(ProjectAdmission::new(pool)))
        .with_events(Arc::new(audit))
}

/// The `Location` header (empty when absent).
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The last path segment of a `Location` as an id.
pub fn id_from_location(location: &str) -> i64 {
    location
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id at the end of Location {location:?}"))
}

/// The body as text, for assertion messages.
pub async fn text(resp: reqwest::Response) -> String {
    resp.text().await.unwrap_or_default()
}

/// The body as JSON; panics with the text when it is not JSON.
pub async fn json_body(resp: reqwest::Response) -> Value {
    let body = resp.text().await.expect("body");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Assert `resp` is `status` with Harbor's error envelope carrying `code`;
/// returns the message.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    let got = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    assert_eq!(got, status, "expected {status} {code}, got {got}: {body}");
    let value: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("error body is not JSON: {body}"));
    assert_eq!(
        value["errors"][0]["code"], code,
        "expected code {code}: {body}"
    );
    value["errors"][0]["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

/// A test double of `wharf-auth`'s identification middleware (the real one
/// is `wharf_auth::identify`, which this crate cannot depend on; the
/// gateway's end-to-end tests go through it). It reads HTTP Basic
/// credentials and checks them with the real [`wharf_projects::identify_basic`]
/// (local users with argon2, robots by the `robot$` prefix), leaves the
/// resulting [`Caller`] (client address from the peer) in the request, and
/// answers bad credentials with 401 in Harbor's envelope. No credentials
/// means anonymous. It does not throttle failed logins.
async fn identify(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let client_addr = req.peer_addr().map(|a| a.ip().to_string());
    if let Some((name, secret)) = basic_credentials(&req) {
        let pool = req
            .app_data::<web::Data<PgPool>>()
            .expect("PgPool app data")
            .clone();
        let prefix = req
            .app_data::<web::Data<ApiSettings>>()
            .expect("ApiSettings app data")
            .robot_prefix
            .clone();
        match wharf_projects::identify_basic(&pool, &prefix, &name, &secret).await {
            Ok(Ok(principal)) => {
                req.extensions_mut().insert(Caller {
                    principal,
                    client_addr,
                });
            }
            Ok(Err(_)) => {
                let refused = ApiError::unauthorized("invalid credentials").error_response();
                return Ok(req.into_response(refused));
            }
            Err(e) => {
                let failed = ApiError::from(e).error_response();
                return Ok(req.into_response(failed));
            }
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// `(name, secret)` from `Authorization: Basic ...`, if present and well formed.
fn basic_credentials(req: &ServiceRequest) -> Option<(String, String)> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(decode_base64(encoded.trim())?).ok()?;
    let (name, secret) = decoded.split_once(':')?;
    Some((name.to_owned(), secret.to_owned()))
}

/// Standard base64 with padding (what HTTP clients send for Basic auth).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        for i in 0..produced {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[test]
fn base64_decodes_basic_credentials() {
    assert_eq!(
        decode_base64("YWRtaW46SGFyYm9yMTIzNDU=").as_deref(),
        Some(&b"admin:Harbor12345"[..])
    );
    assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
    assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
    assert_eq!(decode_base64("YWJj").as_deref(), Some(&b"abc"[..]));
    assert_eq!(decode_base64("!!!!"), None);
}
