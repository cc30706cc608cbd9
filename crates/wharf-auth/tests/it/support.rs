//! A real Wharf front for tests: the registry (`/v2`) guarded by the token
//! authoriser, the token endpoint, the console login, and an `/api/v2.0`
//! scope behind `identify` with one route that echoes the caller, on a
//! random port, with its own PostgreSQL database and blob directory. Clients
//! are real HTTP clients speaking the Docker token protocol.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::Digest as _;
use sqlx::{Connection, PgPool};
use wharf_auth::{Auth, AuthConfig};
use wharf_projects::robots::{NewRobot, PermissionSpec, RobotAccess, RobotLevel};
use wharf_projects::{
    Caller, NewProject, NewUser, Principal, Project, ProjectName, Role, User, Username,
};
use wharf_registry::{Registry, RegistryConfig};
use wharf_store::{BlobStore, StorageConfig};

pub const PASSWORD: &str = "Passw0rd-test";
pub const ADMIN_PASSWORD: &str = "Adm1n-password";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Basic credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Creds {
    pub name: String,
    pub secret: String,
}

impl Creds {
    pub fn new(name: &str, secret: &str) -> Creds {
        Creds {
            name: name.to_owned(),
            secret: secret.to_owned(),
        }
    }

    pub fn header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.name, self.secret))
        )
    }
}

/// What the echo route says about the caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WhoAmI {
    pub kind: String,
    pub name: Option<String>,
    pub client_addr: Option<String>,
}

async fn whoami(caller: Caller) -> HttpResponse {
    let kind = match &caller.principal {
        Principal::Anonymous => "anonymous",
        Principal::User(_) => "user",
        Principal::Robot { .. } => "robot",
    };
    HttpResponse::Ok().json(WhoAmI {
        kind: kind.into(),
        name: caller.principal.name().map(str::to_owned),
        client_addr: caller.client_addr,
    })
}

pub struct Builder {
    config: AuthConfig,
    external_url: Option<String>,
}

impl Builder {
    pub fn config(mut self, f: impl FnOnce(&mut AuthConfig)) -> Builder {
        f(&mut self.config);
        self
    }

    pub fn external_url(mut self, url: &str) -> Builder {
        self.external_url = Some(url.to_owned());
        self
    }

    pub async fn spawn(self) -> TestApp {
        TestApp::start(self.config, self.external_url).await
    }
}

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub pool: PgPool,
    pub key_path: PathBuf,
    pub admin: User,
    db_name: String,
    _dirs: tempfile::TempDir,
    server: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    /// (credentials or anonymous, scope) → token, as a Docker client keeps them.
    tokens: Mutex<HashMap<(Option<Creds>, String), String>>,
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            config: AuthConfig {
                // Tests make many logins from one address.
                throttle: wharf_auth::ThrottleConfig {
                    max_failures_per_address: 1000,
                    ..Default::default()
                },
                ..AuthConfig::default()
            },
            external_url: None,
        }
    }

    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    async fn start(mut config: AuthConfig, external_url: Option<String>) -> TestApp {
        let admin_url = database_url();
        let db_name = format!("wharf_auth_{}", uuid::Uuid::new_v4().simple());
        let mut admin_conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .execute(&mut admin_conn)
            .await
            .expect("create test database");
        admin_conn.close().await.ok();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&db_name);
        let url = url.to_string();

        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to the test database");
        sqlx::migrate!("../../migrations").run(&pool).await.unwrap();
        wharf_projects::ensure_admin(&pool, Some(ADMIN_PASSWORD))
            .await
            .unwrap();
        wharf_projects::ensure_library_project(&pool).await.unwrap();
        let admin = wharf_projects::get_user_by_name(&pool, wharf_projects::ADMIN)
            .await
            .unwrap();

        let dirs = tempfile::tempdir().unwrap();
        let storage = dirs.path().join("blobs");
        let key_path = dirs.path().join("secrets").join("token-signing-key.pem");
        config.signing_key = Some(key_path.clone());

        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect(&url)
                    .await
                    .unwrap();
                let store = BlobStore::from_config(&StorageConfig::Filesystem { root: storage })
                    .await
                    .unwrap();
                let auth = Auth::start(pool.clone(), config, external_url)
                    .await
                    .expect("auth starts");
                let registry = Registry::new(pool, store, RegistryConfig::default())
                    .with_authorizer(auth.authorizer());
                let server = actix_web::HttpServer::new(move || {
                    let registry = registry.clone();
                    let auth = auth.clone();
                    actix_web::App::new()
                        .configure(move |cfg| registry.configure(cfg))
                        .configure(move |cfg| auth.configure(cfg))
                        .service(
                            web::scope("/api/v2.0")
                                .wrap(from_fn(wharf_auth::identify))
                                .route("/whoami", web::get().to(whoami))
                                .route("/whoami", web::post().to(whoami))
                                .route("/whoami", web::delete().to(whoami)),
                        )
                })
                .workers(2)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).unwrap();
                server.await.unwrap();
            })
        });
        let (port, server) = rx.recv().expect("test server failed to start");
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            port,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            pool,
            key_path,
            admin,
            db_name,
            _dirs: dirs,
            server,
            thread: Some(thread),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn admin_creds(&self) -> Creds {
        Creds::new("admin", ADMIN_PASSWORD)
    }

    // ---- domain set-up, straight through wharf-projects ----

    pub async fn create_user(&self, name: &str) -> User {
        wharf_projects::create_user(
            &self.pool,
            &NewUser {
                username: Username::parse(name).unwrap(),
                email: None,
                realname: name,
                comment: "",
                password: PASSWORD,
                sysadmin: false,
            },
        )
        .await
        .unwrap()
    }

    pub async fn create_project(&self, name: &str, public: bool) -> Project {
        let mut new = NewProject::new(ProjectName::parse(name).unwrap(), self.admin.id);
        new.public = public;
        wharf_projects::create_project(&self.pool, &new)
            .await
            .unwrap()
    }

    pub async fn add_member(&self, project: &Project, user: &User, role: Role) {
        wharf_projects::add_member(&self.pool, project.id, user.id, role)
            .await
            .unwrap();
    }

    /// A project robot of `project` granted `repository:<action>` for each
    /// action; returns its login credentials.
    pub async fn create_robot(&self, project: &str, name: &str, actions: &[&str]) -> Creds {
        let created = wharf_projects::robots::create_robot(
            &self.pool,
            &NewRobot {
                name: name.into(),
                description: String::new(),
                level: RobotLevel::Project,
                duration_days: 30,
                disabled: false,
                permissions: vec![PermissionSpec {
                    kind: "project".into(),
                    namespace: project.into(),
                    access: actions
                        .iter()
                        .map(|a| RobotAccess {
                            resource: "repository".into(),
                            action: (*a).into(),
                        })
                        .collect(),
                }],
                creator_type: "local".into(),
                creator_ref: self.admin.id,
            },
        )
        .await
        .unwrap();
        Creds::new(&created.robot.login_name("robot$"), &created.secret)
    }

    // ---- the token endpoint ----

    /// `GET /service/token` with these scopes.
    pub async fn token_response(
        &self,
        creds: Option<&Creds>,
        scopes: &[&str],
    ) -> reqwest::Response {
        let mut query: Vec<(&str, &str)> = vec![("service", "wharf-registry")];
        for scope in scopes {
            query.push(("scope", scope));
        }
        let mut req = self.http.get(self.url("/service/token")).query(&query);
        if let Some(creds) = creds {
            req = req.header("Authorization", creds.header());
        }
        req.send().await.unwrap()
    }

    /// A token for these scopes (the request must succeed).
    pub async fn token(&self, creds: Option<&Creds>, scopes: &[&str]) -> String {
        let resp = self.token_response(creds, scopes).await;
        assert_eq!(resp.status(), 200, "token request for {scopes:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    // ---- a Docker-style client: try, follow the challenge, retry ----

    /// Send a `/v2` request as `creds` (anonymous when `None`), following the
    /// Bearer challenge the way Docker does.
    pub async fn v2(
        &self,
        creds: Option<&Creds>,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let build = |token: Option<&str>| {
            let mut req = self.http.request(method.clone(), self.absolute(path));
            if let Some(ct) = content_type {
                req = req.header("Content-Type", ct);
            }
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            req
        };
        let first = build(None).send().await.unwrap();
        if first.status() != 401 {
            return first;
        }
        let challenge = first
            .headers()
            .get("www-authenticate")
            .expect("a 401 carries a challenge")
            .to_str()
            .unwrap()
            .to_owned();
        let params = parse_challenge(&challenge);
        let scope = params.get("scope").cloned().unwrap_or_default();
        let key = (creds.cloned(), scope.clone());
        let cached = self.tokens.lock().unwrap().get(&key).cloned();
        let token = match cached {
            Some(token) => token,
            None => {
                let mut req = self
                    .http
                    .get(&params["realm"])
                    .query(&[("service", params["service"].as_str())]);
                if !scope.is_empty() {
                    req = req.query(&[("scope", scope.as_str())]);
                }
                if let Some(creds) = creds {
                    req = req.header("Authorization", creds.header());
                }
                let resp = req.send().await.unwrap();
                if resp.status() != 200 {
                    return resp;
                }
                let body: serde_json::Value = resp.json().await.unwrap();
                let token = body["token"].as_str().unwrap().to_owned();
                self.tokens.lock().unwrap().insert(key, token.clone());
                token
            }
        };
        build(Some(&token)).send().await.unwrap()
    }

    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_owned()
        } else {
            self.url(location)
        }
    }

    /// Push a small image `repo:tag` as `creds`. Returns the manifest digest
    /// on success, or the status of the first refused request.
    pub async fn push_image(
        &self,
        creds: Option<&Creds>,
        repo: &str,
        tag: &str,
    ) -> Result<String, u16> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":"{}"}}"#,
            uuid::Uuid::new_v4()
        );
        let layer = format!("layer {}", uuid::Uuid::new_v4()).into_bytes();
        for blob in [config.as_bytes(), &layer] {
            let digest = sha256(blob);
            let resp = self
                .v2(
                    creds,
                    reqwest::Method::POST,
                    &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                    Some("application/octet-stream"),
                    Some(blob.to_vec()),
                )
                .await;
            if resp.status() != 201 {
                return Err(resp.status().as_u16());
            }
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config.as_bytes()), "size": config.len()},
            "layers": [{"mediaType": LAYER, "digest": sha256(&layer), "size": layer.len()}],
        }))
        .unwrap();
        let resp = self
            .v2(
                creds,
                reqwest::Method::PUT,
                &format!("/v2/{repo}/manifests/{tag}"),
                Some(OCI_MANIFEST),
                Some(manifest.clone()),
            )
            .await;
        if resp.status() != 201 {
            return Err(resp.status().as_u16());
        }
        Ok(sha256(&manifest))
    }

    /// The status of `GET /v2/<repo>/manifests/<reference>` as `creds`.
    pub async fn pull_status(&self, creds: Option<&Creds>, repo: &str, reference: &str) -> u16 {
        self.v2(
            creds,
            reqwest::Method::GET,
            &format!("/v2/{repo}/manifests/{reference}"),
            None,
            None,
        )
        .await
        .status()
        .as_u16()
    }

    /// `GET <path>` with exactly this bearer token (no retry).
    pub async fn with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET <path>` with Basic credentials (no token dance).
    pub async fn with_basic(
        &self,
        method: reqwest::Method,
        path: &str,
        creds: &Creds,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .header("Authorization", creds.header())
            .send()
            .await
            .unwrap()
    }

    /// Audit entries about logins of `name`.
    pub async fn login_audit(&self, name: &str) -> Vec<(bool, String, Option<String>)> {
        sqlx::query_as(
            "SELECT operation_result, operation_description, client_addr FROM audit_logs
             WHERE resource_type = 'login' AND resource = $1 AND operation = 'login' ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let server = self.server.clone();
        let thread = self.thread.take();
        let db_name = self.db_name.clone();
        // Stop the server and drop the database on a thread of its own: Drop
        // may run inside the test's runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                server.stop(false).await;
                if let Some(t) = thread {
                    let _ = t.join();
                }
                if let Ok(mut admin) = sqlx::PgConnection::connect(&database_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// The parameters of a `Bearer k="v",k="v"` challenge.
pub fn parse_challenge(challenge: &str) -> HashMap<String, String> {
    let rest = challenge
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer challenge: {challenge}"));
    let mut params = HashMap::new();
    let mut rest = rest;
    while let Some((key, after)) = rest.split_once("=\"") {
        let (value, after) = after.split_once('"').expect("closing quote");
        params.insert(
            key.trim_start_matches(',').trim().to_owned(),
            value.to_owned(),
        );
        rest = after;
    }
    params
}

/// The claims of a JWT, unverified (tests look inside tokens).
pub fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The actions a token grants on one resource.
pub fn granted(token: &str, kind: &str, name: &str) -> Vec<String> {
    claims(token)["access"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == kind && a["name"] == name)
        .flat_map(|a| a["actions"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The `WWW-Authenticate` header of a response.
pub fn challenge_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}
