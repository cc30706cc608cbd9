//! The console's handlers in-process (actix's test service) on a fresh
//! PostgreSQL database per test, with the real session store, services and
//! registry: signing in, the CSRF rule, creating a project, and what a
//! member with a small role is shown and allowed.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::{App, test, web};
use sqlx::{Connection, PgPool};
use wharf_auth::{Auth, AuthConfig};
use wharf_projects::http::ApiSettings;
use wharf_projects::{NewProject, NewUser, ProjectName, Role, Username};
use wharf_registry::{Registry, RegistryConfig};
use wharf_store::{BlobStore, StorageConfig};

const ADMIN_PASSWORD: &str = "Adm1n-password";
const PASSWORD: &str = "Passw0rd-test";

struct Backend {
    db_name: String,
    admin_url: String,
    pool: PgPool,
    auth: Auth,
    registry: Registry,
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
    Backend {
        db_name: name,
        admin_url,
        pool,
        auth,
        registry,
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
