//! The console's handlers in-process (actix's test service) on a fresh
//! PostgreSQL database per test, with the real session store, services and
//! registry: signing in, the CSRF rule, creating a project, and what a
//! member with a small role is shown and allowed.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::{App, test, web};
use sqlx::{Connection, PgPool};
use wharf_auth::{Auth, AuthConfig};
use wharf_projects::http::ApiSettings;
use wharf_projects::{NewProject, NewUser, ProjectName, Role, Username};
use wharf_registry::{Registry, RegistryConfig};
use wharf_replication::crypto::SecretKey;
use wharf_replication::registries::Registries;
use wharf_store::{BlobStore, StorageConfig};

const ADMIN_PASSWORD: &str = "Adm1n-password";
const PASSWORD: &str = "Passw0rd-test";

struct Backend {
    db_name: String,
    admin_url: String,
    pool: PgPool,
    auth: Auth,
    registry: Registry,
    registries: Registries,
    _dirs: tempfile::TempDir,
}

/// A migrated database of its own, the administrator, and the services.
async fn backend() -> Backend {
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("wharf_ui_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&name);
    let pool = PgPool::connect(url.as_str()).await.unwrap();
    sqlx::migrate!("../../migrations").run(&pool).await.unwrap();
    wharf_projects::ensure_admin(&pool, Some(ADMIN_PASSWORD))
        .await
        .unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let config = AuthConfig {
        signing_key: Some(dirs.path().join("key.pem")),
        ..AuthConfig::default()
    };
    let auth = Auth::start(pool.clone(), config, None).await.unwrap();
    let store = BlobStore::from_config(&StorageConfig::Filesystem {
        root: dirs.path().join("blobs"),
    })
    .await
    .unwrap();
    let registry = Registry::new(pool.clone(), store, RegistryConfig::default());
    let key = SecretKey::from_bytes(&[7u8; 32]).unwrap();
    let registries = Registries::new(pool.clone(), Arc::new(key));
    Backend {
        db_name: name,
        admin_url,
        pool,
        auth,
        registry,
        registries,
        _dirs: dirs,
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.db_name.clone());
        // Drop runs inside the test's runtime: drop the database from a
        // thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                })
        })
        .join();
    }
}

macro_rules! console {
    ($b:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new($b.pool.clone()))
                .app_data(web::Data::new($b.registry.clone()))
                .app_data(web::Data::new($b.registries.clone()))
                .app_data(web::Data::new(ApiSettings {
                    robot_prefix: "robot$".into(),
                    ..ApiSettings::default()
                }))
                .configure(|cfg| $b.auth.configure(cfg))
                .configure(wharf_ui::configure),
        )
        .await
    };
}

async fn body_text<B: MessageBody>(resp: ServiceResponse<B>) -> String {
    let bytes = test::read_body(resp).await;
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The `sid=...` pair a response sets.
fn session_cookie<B>(resp: &ServiceResponse<B>) -> String {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sid="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a session cookie")
}

/// The first CSRF field value of a page.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Sign in through the form; the session cookie pair.
macro_rules! sign_in {
    ($app:expr, $username:expr, $password:expr) => {{
        let resp = test::call_service(
            &$app,
            test::TestRequest::post()
                .uri("/login")
                .set_form([
                    ("username", $username),
                    ("password", $password),
                    ("next", "/projects"),
                ])
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers().get(header::LOCATION).unwrap(), "/projects");
        session_cookie(&resp)
    }};
}

/// GET a page with a cookie: status and body.
macro_rules! get_page {
    ($app:expr, $cookie:expr, $uri:expr) => {{
        let resp = test::call_service(
            &$app,
            test::TestRequest::get()
                .uri($uri)
                .insert_header((header::COOKIE, $cookie.to_owned()))
                .to_request(),
        )
        .await;
        let status = resp.status();
        (status, body_text(resp).await)
    }};
}

#[actix_web::test]
async fn signing_in_then_creating_a_project_needs_the_session_token() {
    let b = backend().await;
    let app = console!(b);

    let (status, html) = get_page!(app, "", "/");
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sign in to Wharf"));

    let cookie = sign_in!(app, "admin", ADMIN_PASSWORD);
    let (status, html) = get_page!(app, &cookie, "/projects");
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);

    // No token, then a wrong one: refused, nothing created.
    for form in [
        vec![("name", "forged")],
        vec![("name", "forged"), ("csrf", "nope")],
    ] {
        let resp = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/projects")
                .insert_header((header::COOKIE, cookie.clone()))
                .set_form(form)
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    assert!(
        wharf_projects::get_project_by_name(&b.pool, "forged")
            .await
            .is_err()
    );

    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/projects")
            .insert_header((header::COOKIE, cookie.clone()))
            .set_form([("name", "team"), ("csrf", csrf.as_str())])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers().get(header::LOCATION).unwrap(),
        "/projects/team/repositories"
    );
    let project = wharf_projects::get_project_by_name(&b.pool, "team")
        .await
        .unwrap();
    assert!(!project.is_public());
}

#[actix_web::test]
async fn a_wrong_password_stays_on_the_sign_in_page() {
    let b = backend().await;
    let app = console!(b);
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/login")
            .set_form([("username", "admin"), ("password", "wrong")])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(header::SET_COOKIE).is_none());
    assert!(
        body_text(resp)
            .await
            .contains("Invalid username or password")
    );
}

#[actix_web::test]
async fn a_guest_sees_no_member_controls_and_cannot_post_them() {
    let b = backend().await;
    let admin = wharf_projects::get_user_by_name(&b.pool, "admin")
        .await
        .unwrap();
    let guest = wharf_projects::create_user(
        &b.pool,
        &NewUser {
            username: Username::parse("guest1").unwrap(),
            email: Some("guest1@example.test"),
            realname: "Guest",
            comment: "",
            password: PASSWORD,
            sysadmin: false,
        },
    )
    .await
    .unwrap();
    let project = wharf_projects::create_project(
        &b.pool,
        &NewProject::new(ProjectName::parse("team").unwrap(), admin.id),
    )
    .await
    .unwrap();
    wharf_projects::add_member(&b.pool, project.id, guest.id, Role::Guest)
        .await
        .unwrap();
    let app = console!(b);
    let cookie = sign_in!(app, "guest1", PASSWORD);

    let (status, html) = get_page!(app, &cookie, "/projects/team/members");
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-member=\"guest1\""));
    assert!(!html.contains("id=\"add-member\""));
    assert!(!html.contains("change-role"));
    // A guest may list robot accounts (as in Harbor) but not make or change them.
    let (status, robots) = get_page!(app, &cookie, "/projects/team/robots");
    assert_eq!(status, StatusCode::OK);
    assert!(!robots.contains("id=\"create-robot\""));
    assert!(!robots.contains("Refresh secret"));
    let csrf = csrf_of(&html);
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/projects/team/members")
            .insert_header((header::COOKIE, cookie.clone()))
            .set_form([
                ("username", "admin"),
                ("role", "1"),
                ("csrf", csrf.as_str()),
            ])
            .to_request(),
    )
    .await;
    // Back to the form with the service's refusal next to it.
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        wharf_projects::list_members(&b.pool, project.id)
            .await
            .unwrap()
            .len(),
        2
    );

    // A private project the viewer is not in does not exist for them.
    wharf_projects::create_project(
        &b.pool,
        &NewProject::new(ProjectName::parse("secret").unwrap(), admin.id),
    )
    .await
    .unwrap();
    let (status, _) = get_page!(app, &cookie, "/projects/secret/repositories");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn static_assets_are_served_with_long_cache_headers() {
    let b = backend().await;
    let app = console!(b);
    let css = wharf_ui::assets::url("wharf.css");
    assert!(css.contains("?v="));
    let resp = test::call_service(&app, test::TestRequest::get().uri(&css).to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get(header::CACHE_CONTROL).unwrap(),
        "public, max-age=31536000, immutable"
    );
    let etag = resp.headers().get(header::ETAG).unwrap().clone();
    let again = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&css)
            .insert_header((header::IF_NONE_MATCH, etag))
            .to_request(),
    )
    .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[actix_web::test]
async fn without_javascript_a_removal_is_confirmed_on_a_page_first() {
    let b = backend().await;
    let admin = wharf_projects::get_user_by_name(&b.pool, "admin")
        .await
        .unwrap();
    let dev = wharf_projects::create_user(
        &b.pool,
        &NewUser {
            username: Username::parse("dev1").unwrap(),
            email: Some("dev1@example.test"),
            realname: "Dev",
            comment: "",
            password: PASSWORD,
            sysadmin: false,
        },
    )
    .await
    .unwrap();
    let project = wharf_projects::create_project(
        &b.pool,
        &NewProject::new(ProjectName::parse("team").unwrap(), admin.id),
    )
    .await
    .unwrap();
    let mid = wharf_projects::add_member(&b.pool, project.id, dev.id, Role::Developer)
        .await
        .unwrap();
    let app = console!(b);
    let cookie = sign_in!(app, "admin", ADMIN_PASSWORD);
    let (_, html) = get_page!(app, &cookie, "/projects/team/members");
    let csrf = csrf_of(&html);
    let uri = format!("/projects/team/members/{mid}/delete");

    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&uri)
            .insert_header((header::COOKIE, cookie.clone()))
            .set_form([("csrf", csrf.as_str())])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page = body_text(resp).await;
    assert!(page.contains("Remove dev1 from team?"));
    assert!(page.contains("name=\"confirm\" value=\"yes\""));
    assert_eq!(
        wharf_projects::list_members(&b.pool, project.id)
            .await
            .unwrap()
            .len(),
        2
    );

    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&uri)
            .insert_header((header::COOKIE, cookie.clone()))
            .set_form([("csrf", csrf.as_str()), ("confirm", "yes")])
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let members = wharf_projects::list_members(&b.pool, project.id)
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].username, "admin");
}

/// POST a console form with the session's cookie and token: the response.
macro_rules! post_form {
    ($app:expr, $cookie:expr, $uri:expr, $form:expr) => {
        test::call_service(
            &$app,
            test::TestRequest::post()
                .uri($uri)
                .insert_header((header::COOKIE, $cookie.to_owned()))
                .set_form($form)
                .to_request(),
        )
        .await
    };
}

/// A user with no system role.
async fn plain_user(pool: &PgPool, name: &str) -> wharf_projects::User {
    wharf_projects::create_user(
        pool,
        &NewUser {
            username: Username::parse(name).unwrap(),
            email: Some(&format!("{name}@example.test")),
            realname: name,
            comment: "",
            password: PASSWORD,
            sysadmin: false,
        },
    )
    .await
    .unwrap()
}

#[actix_web::test]
async fn retention_rules_schedule_and_runs_go_through_the_policy_tab() {
    use wharf_projects::retention::store::{get_policy, list_runs, policy_id_of_project};
    let b = backend().await;
    let admin = wharf_projects::get_user_by_name(&b.pool, "admin")
        .await
        .unwrap();
    let project = wharf_projects::create_project(
        &b.pool,
        &NewProject::new(ProjectName::parse("team").unwrap(), admin.id),
    )
    .await
    .unwrap();
    let guest = plain_user(&b.pool, "guest1").await;
    wharf_projects::add_member(&b.pool, project.id, guest.id, Role::Guest)
        .await
        .unwrap();
    // The queue's schema, for the runs; no worker runs them here.
    wharf_jobs::Jobs::start(b.pool.clone()).await.unwrap();
    let app = console!(b);
    let cookie = sign_in!(app, "admin", ADMIN_PASSWORD);
    let (status, html) = get_page!(app, &cookie, "/projects/team/policy/retention");
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"add-retention-rule\""));
    let csrf = csrf_of(&html);
    let token = csrf.as_str();

    let resp = post_form!(
        app,
        cookie,
        "/projects/team/policy/retention/rules",
        [
            ("csrf", token),
            ("template", "nDaysSinceLastPull"),
            ("count", "30"),
            ("repo_decoration", "repoMatches"),
            ("repo_pattern", "**"),
            ("tag_decoration", "matches"),
            ("tag_pattern", "v*"),
        ]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let id = policy_id_of_project(&b.pool, project.id)
        .await
        .unwrap()
        .expect("the first rule creates the policy");
    let policy = get_policy(&b.pool, id).await.unwrap();
    assert_eq!(policy.spec.rules.len(), 1);
    assert!(!policy.spec.rules[0].disabled);

    let resp = post_form!(
        app,
        cookie,
        "/projects/team/policy/retention/rules/1/enabled",
        [("csrf", token), ("enabled", "false")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(get_policy(&b.pool, id).await.unwrap().spec.rules[0].disabled);

    // A bad cron goes back to the form and changes nothing; a good one is saved.
    for (cron, saved) in [("daily", None), ("0 30 1 * * *", Some("0 30 1 * * *"))] {
        let resp = post_form!(
            app,
            cookie,
            "/projects/team/policy/retention/schedule",
            [("csrf", token), ("cron", cron)]
        );
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            get_policy(&b.pool, id).await.unwrap().spec.cron.as_deref(),
            saved
        );
    }

    // A dry run starts at once; a real one asks first.
    let resp = post_form!(
        app,
        cookie,
        "/projects/team/policy/retention/run",
        [("csrf", token), ("dry_run", "yes")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = post_form!(
        app,
        cookie,
        "/projects/team/policy/retention/run",
        [("csrf", token)]
    );
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body_text(resp).await.contains("Run tag retention now?"));
    let runs = list_runs(&b.pool, id, wharf_projects::Page::default())
        .await
        .unwrap();
    assert_eq!(runs.total, 1);
    assert!(wharf_projects::retention::store::run_is_dry(
        &runs.items[0].parameters
    ));
    let (status, html) = get_page!(app, &cookie, "/projects/team/policy/retention");
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("data-run=\"{}\"", runs.items[0].id)));
    let (status, _) = get_page!(
        app,
        &cookie,
        &format!("/projects/team/policy/retention/runs/{}", runs.items[0].id)
    );
    assert_eq!(status, StatusCode::OK);
    // No worker runs here: the run is still waiting, and stops at once.
    let resp = post_form!(
        app,
        cookie,
        &format!(
            "/projects/team/policy/retention/runs/{}/stop",
            runs.items[0].id
        ),
        [("csrf", token), ("confirm", "yes")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let stopped = wharf_jobs::get_execution(&b.pool, runs.items[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.status, wharf_jobs::ExecutionStatus::Stopped);

    // A guest has no retention rights: refused inside the layout, and a
    // hand-made post changes nothing.
    let guest_cookie = sign_in!(app, "guest1", PASSWORD);
    let (status, html) = get_page!(app, &guest_cookie, "/projects/team/policy/retention");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("id=\"current-user\""), "{html}");
    let (_, projects) = get_page!(app, &guest_cookie, "/projects");
    let guest_csrf = csrf_of(&projects);
    let resp = post_form!(
        app,
        guest_cookie,
        "/projects/team/policy/retention/rules/1/delete",
        [("csrf", guest_csrf.as_str()), ("confirm", "yes")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(get_policy(&b.pool, id).await.unwrap().spec.rules.len(), 1);
}

#[actix_web::test]
async fn garbage_collection_is_run_and_scheduled_by_administrators_only() {
    use wharf_projects::jobs::gc::{KIND, SCHEDULE_NAME};
    let b = backend().await;
    plain_user(&b.pool, "user1").await;
    wharf_jobs::Jobs::start(b.pool.clone()).await.unwrap();
    let app = console!(b);
    let count = || async {
        let (_, total) =
            wharf_jobs::list_executions(&b.pool, &wharf_jobs::ExecutionQuery::new(KIND))
                .await
                .unwrap();
        total
    };

    let user = sign_in!(app, "user1", PASSWORD);
    let (status, html) = get_page!(app, &user, "/admin/gc");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("id=\"current-user\""));
    let user_csrf = csrf_of(&html);
    let resp = post_form!(
        app,
        user,
        "/admin/gc/run",
        [("csrf", user_csrf.as_str()), ("dry_run", "yes")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(count().await, 0);

    let admin = sign_in!(app, "admin", ADMIN_PASSWORD);
    let (status, html) = get_page!(app, &admin, "/admin/gc");
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);
    let token = csrf.as_str();
    let resp = post_form!(
        app,
        admin,
        "/admin/gc/run",
        [
            ("csrf", token),
            ("dry_run", "yes"),
            ("delete_untagged", "yes")
        ]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(count().await, 1);
    // No worker runs here, so the first is still waiting: a second is refused.
    let resp = post_form!(
        app,
        admin,
        "/admin/gc/run",
        [("csrf", token), ("dry_run", "yes")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        resp.headers()
            .get_all(header::SET_COOKIE)
            .any(|c| c.to_str().unwrap().contains("already+waiting"))
    );
    assert_eq!(count().await, 1);

    let resp = post_form!(
        app,
        admin,
        "/admin/gc/schedule",
        [("csrf", token), ("cron", "0 0 3 * * *"), ("workers", "2")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let schedule = wharf_jobs::get_schedule(&b.pool, SCHEDULE_NAME)
        .await
        .unwrap()
        .expect("a schedule");
    assert_eq!(schedule.cron, "0 0 3 * * *");
    assert_eq!(schedule.payload["workers"], 2);
    let resp = post_form!(
        app,
        admin,
        "/admin/gc/schedule",
        [("csrf", token), ("cron", "")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        wharf_jobs::get_schedule(&b.pool, SCHEDULE_NAME)
            .await
            .unwrap()
            .is_none()
    );
}

#[actix_web::test]
async fn system_robots_and_settings_are_for_administrators_only() {
    let b = backend().await;
    let admin = wharf_projects::get_user_by_name(&b.pool, "admin")
        .await
        .unwrap();
    wharf_projects::create_project(
        &b.pool,
        &NewProject::new(ProjectName::parse("team").unwrap(), admin.id),
    )
    .await
    .unwrap();
    plain_user(&b.pool, "user1").await;
    let app = console!(b);

    let user = sign_in!(app, "user1", PASSWORD);
    for uri in ["/admin/robots", "/admin/settings"] {
        let (status, html) = get_page!(app, &user, uri);
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert!(html.contains("id=\"current-user\""));
    }
    let (_, html) = get_page!(app, &user, "/projects");
    let user_csrf = csrf_of(&html);
    let resp = post_form!(
        app,
        user,
        "/admin/robots",
        [
            ("csrf", user_csrf.as_str()),
            ("name", "sneaky"),
            ("duration", "-1"),
            ("system", "project:create")
        ]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    let cookie = sign_in!(app, "admin", ADMIN_PASSWORD);
    let (status, html) = get_page!(app, &cookie, "/admin/settings");
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("robot$"));
    let (status, html) = get_page!(app, &cookie, "/admin/robots");
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);
    let resp = post_form!(
        app,
        cookie,
        "/admin/robots",
        [
            ("csrf", csrf.as_str()),
            ("name", "deployer"),
            ("duration", "-1"),
            ("projects", "team"),
            ("access", "repository:pull"),
            ("system", "garbage-collection:list")
        ]
    );
    // The secret is in the answer itself, never in a redirect.
    assert_eq!(resp.status(), StatusCode::OK);
    let page = body_text(resp).await;
    assert!(page.contains("id=\"robot-secret-value\""));
    let robots = wharf_projects::robots::list_robots(
        &b.pool,
        &wharf_projects::robots::RobotQuery {
            level: Some(wharf_projects::robots::RobotLevel::System),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(robots.total, 1);
    assert_eq!(robots.items[0].name, "deployer");
    assert_eq!(robots.items[0].permissions.len(), 2);
}

/// Debian's `docker-registry` on a free loopback port, killed when dropped.
struct Distribution {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_distribution() -> Distribution {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
        dir.path().join("data").display()
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = std::process::Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("/usr/bin/docker-registry");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "docker-registry did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Distribution {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// The message a redirect leaves for the next page, decoded.
fn flash_of<B>(resp: &ServiceResponse<B>) -> String {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wharf_flash="))
        .map(|c| {
            let value = c["wharf_flash=".len()..]
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            url::form_urlencoded::parse(format!("m={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn registries_and_replication_policies_are_for_administrators_only() {
    let b = backend().await;
    plain_user(&b.pool, "user1").await;
    let distribution = start_distribution();
    // The queue's tables, without a worker: executions wait.
    wharf_jobs::Jobs::start(b.pool.clone()).await.unwrap();
    let app = console!(b);
    const SECRET: &str = "never-shown-again";

    // A user without a system role sees neither page and cannot post.
    let user = sign_in!(app, "user1", PASSWORD);
    for page in ["/admin/registries", "/admin/replications"] {
        let (status, _) = get_page!(app, &user, page);
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (_, html) = get_page!(app, &user, "/account");
    let user_csrf = csrf_of(&html);
    let resp = post_form!(
        app,
        user,
        "/admin/registries",
        [
            ("csrf", user_csrf.as_str()),
            ("name", "sneaky"),
            ("type", "docker-registry"),
            ("url", distribution.base.as_str())
        ]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(b.registries.list().await.unwrap().is_empty());

    let admin = sign_in!(app, "admin", ADMIN_PASSWORD);
    let (status, html) = get_page!(app, &admin, "/admin/registries");
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);
    let token = csrf.as_str();
    let resp = post_form!(
        app,
        admin,
        "/admin/registries",
        [
            ("csrf", token),
            ("name", "mirror"),
            ("type", "docker-registry"),
            ("url", distribution.base.as_str()),
            ("access_key", "replicator"),
            ("access_secret", SECRET)
        ]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let mirror = b.registries.list().await.unwrap().remove(0);
    assert_eq!(mirror.access_key.as_deref(), Some("replicator"));
    // A taken name comes back next to the form.
    let resp = post_form!(
        app,
        admin,
        "/admin/registries",
        [
            ("csrf", token),
            ("name", "mirror"),
            ("type", "docker-registry"),
            ("url", distribution.base.as_str())
        ]
    );
    assert!(
        flash_of(&resp).contains("already exists"),
        "{}",
        flash_of(&resp)
    );

    // Test connection: docker-registry without auth accepts the basic
    // credential; a closed port is unhealthy with the reason.
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/registries/{}/ping", mirror.id),
        [("csrf", token)]
    );
    assert!(
        flash_of(&resp).contains("mirror is healthy"),
        "{}",
        flash_of(&resp)
    );
    let closed = format!("http://127.0.0.1:{}", free_port());
    let resp = post_form!(
        app,
        admin,
        "/admin/registries",
        [
            ("csrf", token),
            ("name", "gone"),
            ("type", "harbor"),
            ("url", closed.as_str())
        ]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let gone = b
        .registries
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "gone")
        .unwrap();
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/registries/{}/ping", gone.id),
        [("csrf", token)]
    );
    assert!(flash_of(&resp).starts_with(&format!("e:registry-{}\ngone is unhealthy", gone.id)));
    let (_, html) = get_page!(app, &admin, "/admin/registries");
    assert!(html.contains(">healthy</span>") && html.contains(">unhealthy</span>"));
    assert!(!html.contains(SECRET));

    // Editing with the secret left empty keeps it; the form never shows it.
    let sealed = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT access_secret FROM replication_registries WHERE id = $1",
        )
        .bind(mirror.id)
        .fetch_one(&b.pool)
        .await
        .unwrap()
    };
    let before = sealed().await;
    assert!(before.is_some());
    let (status, html) = get_page!(app, &admin, &format!("/admin/registries/{}", mirror.id));
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(SECRET));
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/registries/{}", mirror.id),
        [
            ("csrf", token),
            ("name", "mirror-1"),
            ("url", distribution.base.as_str()),
            ("access_key", "replicator"),
            ("access_secret", "")
        ]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(sealed().await, before);
    assert_eq!(
        b.registries.get(mirror.id).await.unwrap().unwrap().name,
        "mirror-1"
    );

    // A push-based manual policy to the mirror.
    let registry_id = mirror.id.to_string();
    let mut policy = vec![
        ("csrf", token),
        ("name", "to-mirror"),
        ("direction", "push"),
        ("registry_id", registry_id.as_str()),
        ("name_filter", "library/**"),
        ("tag_filter", "v*"),
        ("dest_namespace", "copies"),
        ("replace_count", "1"),
        ("trigger", "scheduled"),
        ("cron", "not a cron"),
        ("override_tags", "yes"),
        ("enabled", "yes"),
    ];
    let resp = post_form!(app, admin, "/admin/replications", policy.clone());
    assert!(
        flash_of(&resp).starts_with("e:create-policy\n"),
        "{}",
        flash_of(&resp)
    );
    policy[8] = ("trigger", "manual");
    let resp = post_form!(app, admin, "/admin/replications", policy.clone());
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let created = wharf_replication::policies::get_policy_by_name(&b.pool, "to-mirror")
        .await
        .unwrap()
        .expect("the policy");
    assert_eq!(created.src_registry_id, None);
    assert_eq!(created.dest_registry_id, Some(mirror.id));
    assert_eq!(created.dest_namespace.as_deref(), Some("copies"));
    assert_eq!(created.dest_namespace_replace_count, 1);
    assert_eq!(created.name_filter.as_deref(), Some("library/**"));
    // Pull-based, labels (this Wharf's) cannot be judged: refused by the domain.
    let pull = vec![
        ("csrf", token),
        ("name", "from-mirror"),
        ("direction", "pull"),
        ("registry_id", registry_id.as_str()),
        ("labels", "prod"),
        ("trigger", "manual"),
        ("enabled", "yes"),
    ];
    let resp = post_form!(app, admin, "/admin/replications", pull);
    assert!(
        flash_of(&resp).contains("label filters need this Wharf as the source"),
        "{}",
        flash_of(&resp)
    );
    let (_, html) = get_page!(app, &admin, "/admin/replications");
    assert!(html.contains("this Wharf → mirror-1"));
    assert!(html.contains("never run"));

    // The user may not start it either.
    let path = format!("/admin/replications/{}/run", created.id);
    let resp = post_form!(
        app,
        user,
        &path,
        [("csrf", user_csrf.as_str()), ("confirm", "yes")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let executions = || async {
        wharf_replication::policies::list_executions(
            &b.pool,
            &wharf_replication::policies::ExecutionFilter {
                policy_id: Some(created.id),
                page: 1,
                page_size: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    };
    assert_eq!(executions().await.1, 0);
    // Without JavaScript, Replicate now asks on a page first.
    let resp = post_form!(app, admin, &path, [("csrf", token)]);
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body_text(resp).await.contains("Replicate to-mirror now?"));
    assert_eq!(executions().await.1, 0);
    let resp = post_form!(app, admin, &path, [("csrf", token), ("confirm", "yes")]);
    assert!(
        flash_of(&resp).starts_with("o:Execution "),
        "{}",
        flash_of(&resp)
    );
    let (items, total) = executions().await;
    assert_eq!(total, 1);
    let eid = items[0].id;

    // No worker runs here: the execution waits, with a Stop button.
    let (status, html) = get_page!(app, &admin, &format!("/admin/replications/{}", created.id));
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("/executions/{eid}/stop")));
    let (status, html) = get_page!(
        app,
        &admin,
        &format!("/admin/replications/{}/executions/{eid}", created.id)
    );
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Pending"));
    // Another policy's id in the path does not reach it.
    let (status, _) = get_page!(
        app,
        &admin,
        &format!("/admin/replications/{}/executions/{eid}", created.id + 1)
    );
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The endpoint is in use: its deletion is refused next to its row.
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/registries/{}/delete", mirror.id),
        [("csrf", token), ("confirm", "yes")]
    );
    assert!(
        flash_of(&resp).contains("used by 1 replication policies"),
        "{}",
        flash_of(&resp)
    );
    assert!(b.registries.get(mirror.id).await.unwrap().is_some());
    // So is the policy's while its execution waits; stopped, it goes.
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/replications/{}/delete", created.id),
        [("csrf", token), ("confirm", "yes")]
    );
    assert!(
        flash_of(&resp).contains("waiting or running"),
        "{}",
        flash_of(&resp)
    );
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/replications/{}/executions/{eid}/stop", created.id),
        [("csrf", token), ("confirm", "yes")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        wharf_replication::policies::get_execution(&b.pool, eid)
            .await
            .unwrap()
            .unwrap()
            .status,
        wharf_jobs::ExecutionStatus::Stopped
    );
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/replications/{}/enabled", created.id),
        [("csrf", token), ("enabled", "false")]
    );
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(
        !wharf_replication::policies::get_policy(&b.pool, created.id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/replications/{}/delete", created.id),
        [("csrf", token), ("confirm", "yes")]
    );
    assert_eq!(flash_of(&resp), "o:Replication policy to-mirror deleted.");
    let resp = post_form!(
        app,
        admin,
        &format!("/admin/registries/{}/delete", mirror.id),
        [("csrf", token), ("confirm", "yes")]
    );
    assert_eq!(flash_of(&resp), "o:Registry mirror-1 deleted.");
    assert!(b.registries.get(mirror.id).await.unwrap().is_none());
}
