//! `/robots`: robot accounts through the real HTTP API, with the secret
//! checked by the real `identify_basic` afterwards.

use reqwest::StatusCode;
use serde_json::{Value, json};
use wharf_projects::robots::PermissionKind;
use wharf_projects::{
    LoginRefused, NewProject, NewUser, Principal, Project, ProjectName, Role, User, Username,
    add_member, create_project, create_user, identify_basic,
};

use crate::api_support::{
    ApiApp, ROBOT_PREFIX, expect_error, id_from_location, json_body, location,
};

/// A user made with the domain functions (not the users endpoint), and its
/// password.
pub async fn user(app: &ApiApp, name: &str) -> (User, String) {
    let password = format!("Pw1-{name}-Secret");
    let user = create_user(
        app.pool(),
        &NewUser {
            username: Username::parse(name).expect("valid username"),
            email: None,
            realname: name,
            comment: "",
            password: &password,
            sysadmin: false,
        },
    )
    .await
    .expect("user created");
    (user, password)
}

/// A project owned by `admin` made with the domain functions.
pub async fn project(app: &ApiApp, name: &str, public: bool) -> Project {
    let admin = wharf_projects::get_user_by_name(app.pool(), "admin")
        .await
        .expect("admin exists");
    let mut new = NewProject::new(ProjectName::parse(name).expect("valid name"), admin.id);
    new.public = public;
    create_project(app.pool(), &new)
        .await
        .expect("project created")
}

/// Make `user` a member of `project` with `role`.
pub async fn member(app: &ApiApp, project: &Project, user: &User, role: Role) {
    add_member(app.pool(), project.id, user.id, role)
        .await
        .expect("member added");
}

/// Create a robot through the API as `admin`; returns (id, login name, secret).
pub async fn admin_robot(app: &ApiApp, body: Value) -> (i64, String, String) {
    let resp = app
        .as_admin(app.client.post(app.url("/robots")))
        .json(&body)
        .send()
        .await
        .expect("POST /robots");
    created(resp).await
}

/// The (id, login name, secret) of a 201 answer to `POST /robots`.
pub async fn created(resp: reqwest::Response) -> (i64, String, String) {
    let status = resp.status();
    let location = location(&resp);
    let body = json_body(resp).await;
    assert_eq!(status, StatusCode::CREATED, "create robot: {body}");
    let id = body["id"].as_i64().expect("id");
    assert_eq!(location, format!("/api/v2.0/robots/{id}"));
    assert_eq!(id_from_location(&location), id);
    (
        id,
        body["name"].as_str().expect("name").to_owned(),
        body["secret"].as_str().expect("secret").to_owned(),
    )
}

/// A system robot body granting `access` in the system namespace and
/// `project_access` in `project`.
pub fn system_robot(
    name: &str,
    system_access: &[(&str, &str)],
    project: &str,
    project_access: &[(&str, &str)],
) -> Value {
    let access = |pairs: &[(&str, &str)]| -> Vec<Value> {
        pairs
            .iter()
            .map(|(r, a)| json!({ "resource": r, "action": a }))
            .collect()
    };
    let mut permissions = Vec::new();
    if !system_access.is_empty() {
        permissions
            .push(json!({ "kind": "system", "namespace": "/", "access": access(system_access) }));
    }
    if !project_access.is_empty() {
        permissions.push(
            json!({ "kind": "project", "namespace": project, "access": access(project_access) }),
        );
    }
    json!({
        "name": name, "description": "", "level": "system", "disable": false,
        "duration": -1, "permissions": permissions,
    })
}

/// A project robot body granting `access` in `project`.
pub fn project_robot(name: &str, project: &str, access: &[(&str, &str)]) -> Value {
    let access: Vec<Value> = access
        .iter()
        .map(|(r, a)| json!({ "resource": r, "action": a }))
        .collect();
    json!({
        "name": name, "description": "for CI", "level": "project", "disable": false,
        "duration": 30,
        "permissions": [{ "kind": "project", "namespace": project, "access": access }],
    })
}

async fn login(app: &ApiApp, name: &str, secret: &str) -> Result<Principal, LoginRefused> {
    identify_basic(app.pool(), ROBOT_PREFIX, name, secret)
        .await
        .expect("identify_basic runs")
}

#[tokio::test]
async fn system_robot_lifecycle_shows_the_secret_only_when_made() {
    let app = ApiApp::spawn().await;
    let body = system_robot(
        "ci",
        &[("project", "list"), ("audit-log", "list")],
        "library",
        &[("repository", "pull"), ("repository", "push")],
    );
    let before = chrono::Utc::now().timestamp();
    let resp = app
        .as_admin(app.client.post(app.url("/robots")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let location = location(&resp);
    let created = json_body(resp).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v2.0/robots/{id}"));
    assert_eq!(created["name"], "robot$ci");
    assert_eq!(created["expires_at"], -1);
    assert!(created["creation_time"].as_str().is_some(), "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 8, "{created}");

    // The robot signs in with its login name and secret, and is a robot.
    match login(&app, "robot$ci", &secret).await {
        Ok(Principal::Robot { login_name, robot }) => {
            assert_eq!(login_name, "robot$ci");
            assert_eq!(robot.id, id);
        }
        other => panic!("robot login: {other:?}"),
    }
    assert_eq!(
        login(&app, "robot$ci", "Wrong-Secret-1").await,
        Err(LoginRefused::BadCredentials)
    );

    // Reading it back never shows the secret.
    let resp = app
        .as_admin(app.client.get(app.url(&format!("/robots/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let robot = json_body(resp).await;
    assert!(robot.get("secret").is_none(), "{robot}");
    assert!(!robot.to_string().contains(&secret));
    assert_eq!(robot["name"], "robot$ci");
    assert_eq!(robot["level"], "system");
    assert_eq!(robot["duration"], -1);
    assert_eq!(robot["expires_at"], -1);
    assert_eq!(robot["editable"], true);
    assert_eq!(robot["disable"], false);
    assert_eq!(robot["creator_type"], "local");
    let admin = wharf_projects::get_user_by_name(app.pool(), "admin")
        .await
        .unwrap();
    assert_eq!(robot["creator_ref"], admin.id);
    assert!(robot["update_time"].as_str().is_some());
    assert_eq!(
        robot["permissions"],
        json!([
            { "kind": "system", "namespace": "/", "access": [
                { "resource": "project", "action": "list" },
                { "resource": "audit-log", "action": "list" }] },
            { "kind": "project", "namespace": "library", "access": [
                { "resource": "repository", "action": "pull" },
                { "resource": "repository", "action": "push" }] },
        ])
    );

    // A refresh without a secret generates one: the old secret stops working.
    let resp = app
        .as_admin(app.client.patch(app.url(&format!("/robots/{id}"))))
        .json(&json!({ "secret": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let refreshed = json_body(resp).await;
    let new_secret = refreshed["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.len() >= 8 && new_secret != secret, "{refreshed}");
    assert_eq!(
        login(&app, "robot$ci", &secret).await,
        Err(LoginRefused::BadCredentials)
    );
    assert!(login(&app, "robot$ci", &new_secret).await.is_ok());

    // So does a refresh with no body at all.
    let resp = app
        .as_admin(app.client.patch(app.url(&format!("/robots/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let third = json_body(resp).await["secret"].as_str().unwrap().to_owned();
    assert!(!third.is_empty() && third != new_secret);

    // A chosen secret is checked against the policy and not echoed back.
    let resp = app
        .as_admin(app.client.patch(app.url(&format!("/robots/{id}"))))
        .json(&json!({ "secret": "weak" }))
        .send()
        .await
        .unwrap();
    let message = expect_error(resp, 400, "BAD_REQUEST").await;
    assert!(message.contains("secret"), "{message}");
    let resp = app
        .as_admin(app.client.patch(app.url(&format!("/robots/{id}"))))
        .json(&json!({ "secret": "Chosen-Secret-42" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json_body(resp).await, json!({ "secret": "" }));
    assert!(login(&app, "robot$ci", "Chosen-Secret-42").await.is_ok());
    assert_eq!(
        login(&app, "robot$ci", &third).await,
        Err(LoginRefused::BadCredentials)
    );

    // Update: description, lifetime (from creation), disabled, permissions.
    let mut change = robot.clone();
    change["description"] = json!("nightly builds");
    change["duration"] = json!(10);
    change["disable"] = json!(true);
    change["permissions"] = json!([{ "kind": "project", "namespace": "library",
        "access": [{ "resource": "repository", "action": "pull" }] }]);
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/robots/{id}"))))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let resp = app
        .as_admin(app.client.get(app.url(&format!("/robots/{id}"))))
        .send()
        .await
        .unwrap();
    let updated = json_body(resp).await;
    assert_eq!(updated["description"], "nightly builds");
    assert_eq!(updated["duration"], 10);
    assert_eq!(updated["disable"], true);
    let expires = updated["expires_at"].as_i64().unwrap();
    let ten_days = 10 * 24 * 3600;
    assert!(
        (before + ten_days - 5..=chrono::Utc::now().timestamp() + ten_days + 5).contains(&expires),
        "expires_at {expires} is not ten days after creation"
    );
    assert_eq!(updated["permissions"].as_array().unwrap().len(), 1);
    // Disabled robots are refused even with the right secret.
    assert_eq!(
        login(&app, "robot$ci", "Chosen-Secret-42").await,
        Err(LoginRefused::RobotDisabled)
    );
    let resp = app
        .as_basic(
            app.client.get(app.url("/systeminfo")),
            "robot$ci",
            "Chosen-Secret-42",
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "UNAUTHORIZED").await;

    // Name and level cannot change.
    let mut rename = updated.clone();
    rename["name"] = json!("robot$other");
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/robots/{id}"))))
        .json(&rename)
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    let mut relevel = updated.clone();
    relevel["level"] = json!("project");
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/robots/{id}"))))
        .json(&relevel)
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;

    // Delete: gone, and its secret with it.
    let resp = app
        .as_admin(app.client.delete(app.url(&format!("/robots/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .as_admin(app.client.get(app.url(&format!("/robots/{id}"))))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    let resp = app
        .as_admin(app.client.delete(app.url(&format!("/robots/{id}"))))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    assert_eq!(
        login(&app, "robot$ci", "Chosen-Secret-42").await,
        Err(LoginRefused::BadCredentials)
    );

    // Every change is in the audit log, by admin, about robot$ci; no secret
    // is ever written there.
    let entries: Vec<_> = app
        .audit_entries()
        .await
        .into_iter()
        .filter(|e| e.resource_type == "robot")
        .collect();
    let operations: Vec<&str> = entries.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(
        operations,
        ["create", "update", "update", "update", "update", "delete"],
        "{entries:?}"
    );
    for entry in &entries {
        assert_eq!(entry.resource, "robot$ci");
        assert_eq!(entry.username, "admin");
        assert_eq!(entry.project_id, None);
        assert!(entry.client_addr.is_some());
        for s in [&secret, &new_secret, &third, &"Chosen-Secret-42".to_owned()] {
            assert!(
                !entry.operation_description.contains(s.as_str()),
                "{entry:?}"
            );
        }
    }
}

#[tokio::test]
async fn expired_robots_are_refused() {
    let app = ApiApp::spawn().await;
    let (id, name, secret) = admin_robot(
        &app,
        project_robot("short", "library", &[("repository", "pull")]),
    )
    .await;
    assert_eq!(name, "robot$library+short");
    assert!(login(&app, &name, &secret).await.is_ok());
    sqlx::query("UPDATE robots SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        login(&app, &name, &secret).await,
        Err(LoginRefused::RobotExpired)
    );
    let resp = app
        .as_basic(app.client.get(app.url("/systeminfo")), &name, &secret)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn invalid_robots_are_refused_with_the_reason() {
    let app = ApiApp::spawn().await;
    project(&app, "team", false).await;
    let (existing, _, _) =
        admin_robot(&app, project_robot("ci", "team", &[("repository", "pull")])).await;

    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            project_robot("ci", "team", &[("repository", "pull")]),
            409,
            "CONFLICT",
            "exists",
        ),
        (
            project_robot("Bad Name", "team", &[("repository", "pull")]),
            400,
            "BAD_REQUEST",
            "name",
        ),
        (
            project_robot("a+b", "team", &[("repository", "pull")]),
            400,
            "BAD_REQUEST",
            "name",
        ),
        (
            {
                let mut b = project_robot("zero", "team", &[("repository", "pull")]);
                b["duration"] = json!(0);
                b
            },
            400,
            "BAD_REQUEST",
            "duration",
        ),
        (
            {
                let mut b = project_robot("neg", "team", &[("repository", "pull")]);
                b["duration"] = json!(-2);
                b
            },
            400,
            "BAD_REQUEST",
            "duration",
        ),
        (
            {
                let mut b = project_robot("lvl", "team", &[("repository", "pull")]);
                b["level"] = json!("global");
                b
            },
            400,
            "BAD_REQUEST",
            "level",
        ),
        (
            project_robot("fly", "team", &[("repository", "fly")]),
            400,
            "BAD_REQUEST",
            "repository:fly",
        ),
        (
            project_robot("nope", "team", &[("nothing", "read")]),
            400,
            "BAD_REQUEST",
            "nothing:read",
        ),
        // Robots never get robot:update (Harbor leaves it out of what robots
        // may hold).
        (
            project_robot("upd", "team", &[("robot", "update")]),
            400,
            "BAD_REQUEST",
            "robot:update",
        ),
        // A system permission on a project robot.
        (
            json!({ "name": "sys", "level": "project", "duration": -1, "permissions": [
                { "kind": "system", "namespace": "team",
                  "access": [{ "resource": "user", "action": "list" }] }] }),
            400,
            "BAD_REQUEST",
            "system",
        ),
        // `*` is for system robots only.
        (
            project_robot("star", "*", &[("repository", "pull")]),
            400,
            "BAD_REQUEST",
            "*",
        ),
        // A project robot has exactly one permission entry, for its project.
        (
            json!({ "name": "two", "level": "project", "duration": -1, "permissions": [
                { "kind": "project", "namespace": "team",
                  "access": [{ "resource": "repository", "action": "pull" }] },
                { "kind": "project", "namespace": "library",
                  "access": [{ "resource": "repository", "action": "pull" }] }] }),
            400,
            "BAD_REQUEST",
            "exactly one",
        ),
        (
            json!({ "name": "none", "level": "project", "duration": -1, "permissions": [] }),
            400,
            "BAD_REQUEST",
            "exactly one",
        ),
        (
            project_robot("empty", "team", &[]),
            400,
            "BAD_REQUEST",
            "grants nothing",
        ),
        (
            project_robot("ghost", "no-such-project", &[("repository", "pull")]),
            404,
            "NOT_FOUND",
            "no-such-project",
        ),
        // System robots: system permissions live in namespace "/", project
        // permissions name an existing project (or "*"), kinds are known.
        (
            system_robot("sysns", &[], "library", &[])
                .as_object()
                .cloned()
                .map(|mut b| {
                    b.insert(
                        "permissions".into(),
                        json!([{ "kind": "system", "namespace": "library",
                    "access": [{ "resource": "user", "action": "list" }] }]),
                    );
                    Value::Object(b)
                })
                .unwrap(),
            400,
            "BAD_REQUEST",
            "namespace",
        ),
        (
            system_robot(
                "sysghost",
                &[],
                "no-such-project",
                &[("repository", "pull")],
            ),
            400,
            "BAD_REQUEST",
            "no-such-project",
        ),
        (
            system_robot("syskind", &[], "library", &[])
                .as_object()
                .cloned()
                .map(|mut b| {
                    b.insert(
                        "permissions".into(),
                        json!([{ "kind": "global", "namespace": "/",
                    "access": [{ "resource": "user", "action": "list" }] }]),
                    );
                    Value::Object(b)
                })
                .unwrap(),
            400,
            "BAD_REQUEST",
            "kind",
        ),
        (
            system_robot("sysnone", &[], "library", &[]),
            400,
            "BAD_REQUEST",
            "permission",
        ),
        // A project-only pair is not a system permission.
        (
            system_robot("syspush", &[("repository", "push")], "library", &[]),
            400,
            "BAD_REQUEST",
            "repository:push",
        ),
        (
            {
                let mut b = project_robot("deny", "team", &[]);
                b["permissions"][0]["access"] =
                    json!([{ "resource": "repository", "action": "pull", "effect": "deny" }]);
                b
            },
            400,
            "BAD_REQUEST",
            "deny",
        ),
    ];
    for (body, status, code, needle) in cases {
        let resp = app
            .as_admin(app.client.post(app.url("/robots")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let message = expect_error(resp, status, code).await;
        assert!(
            message.contains(needle),
            "{body}: message {message:?} should mention {needle:?}"
        );
    }

    // "allow" (or no effect) and a system robot covering every project are fine.
    let mut allow = system_robot("everywhere", &[], "*", &[("repository", "pull")]);
    allow["permissions"][0]["access"][0]["effect"] = json!("allow");
    admin_robot(&app, allow).await;

    // Malformed JSON is a 400 in Harbor's envelope, not actix's plain text.
    for raw in ["{not json", r#""a string""#, r#"{"name": 5}"#] {
        let resp = app
            .as_admin(app.client.post(app.url("/robots")))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let message = expect_error(resp, 400, "BAD_REQUEST").await;
        assert!(message.contains("JSON"), "{message}");
    }
    let resp = app
        .as_admin(app.client.put(app.url(&format!("/robots/{existing}"))))
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    let resp = app
        .as_admin(app.client.get(app.url("/robots/abc")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    let resp = app
        .as_admin(app.client.get(app.url("/robots/999999")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;

    // Anonymous callers may do nothing with robots.
    for rb in [
        app.client.get(app.url("/robots")),
        app.client.post(app.url("/robots")).json(&project_robot(
            "x",
            "library",
            &[("repository", "pull")],
        )),
        app.client.get(app.url("/robots/1")),
        app.client.delete(app.url("/robots/1")),
    ] {
        let resp = rb.send().await.unwrap();
        expect_error(resp, 401, "UNAUTHORIZED").await;
    }
    // Nothing invalid was stored.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM robots")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn project_roles_decide_who_manages_project_robots() {
    let app = ApiApp::spawn().await;
    let team = project(&app, "team", false).await;
    let (owner, owner_pw) = user(&app, "owner").await;
    let (dev, dev_pw) = user(&app, "dev").await;
    let (limited, limited_pw) = user(&app, "limited").await;
    let (_outsider, outsider_pw) = user(&app, "outsider").await;
    member(&app, &team, &owner, Role::ProjectAdmin).await;
    member(&app, &team, &dev, Role::Developer).await;
    member(&app, &team, &limited, Role::LimitedGuest).await;
    let body = project_robot(
        "ci",
        "team",
        &[("repository", "pull"), ("repository", "push")],
    );

    // Only the project admin may create.
    let resp = app
        .as_basic(app.client.post(app.url("/robots")), "dev", &dev_pw)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
    let resp = app
        .as_basic(
            app.client.post(app.url("/robots")),
            "outsider",
            &outsider_pw,
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    let resp = app
        .as_basic(app.client.post(app.url("/robots")), "owner", &owner_pw)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (id, name, _secret) = created(resp).await;
    assert_eq!(name, "robot$team+ci");
    let entry = app.last_audit("robot").await.expect("audit entry");
    assert_eq!(
        (
            entry.operation.as_str(),
            entry.username.as_str(),
            entry.resource.as_str(),
            entry.project_id
        ),
        ("create", "owner", "robot$team+ci", Some(team.id))
    );
    for extra in ["build", "deploy"] {
        let resp = app
            .as_basic(app.client.post(app.url("/robots")), "owner", &owner_pw)
            .json(&project_robot(extra, "team", &[("repository", "pull")]))
            .send()
            .await
            .unwrap();
        created(resp).await;
    }
    admin_robot(
        &app,
        project_robot("other", "library", &[("repository", "pull")]),
    )
    .await;
    admin_robot(&app, system_robot("sys", &[("project", "list")], "", &[])).await;

    // Listing a project's robots takes robot:list there.
    let list = format!("/robots?q=Level%3Dproject%2CProjectID%3D{}", team.id);
    for (who, pw) in [("owner", &owner_pw), ("dev", &dev_pw)] {
        let resp = app
            .as_basic(app.client.get(app.url(&list)), who, pw)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{who}");
        assert_eq!(resp.headers()["x-total-count"], "3");
        let names: Vec<String> = json_body(resp)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            ["robot$team+ci", "robot$team+build", "robot$team+deploy"]
        );
    }
    let resp = app
        .as_basic(app.client.get(app.url(&list)), "limited", &limited_pw)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
    let resp = app
        .as_basic(app.client.get(app.url(&list)), "outsider", &outsider_pw)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;
    // ProjectID alone means project robots too.
    let resp = app
        .as_basic(
            app.client
                .get(app.url(&format!("/robots?q=ProjectID%3D{}", team.id))),
            "dev",
            &dev_pw,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "3");

    // Filters, sorting and paging.
    let resp = app
        .as_basic(
            app.client
                .get(app.url(&format!("{list}%2Cname%3D~i&sort=-name&page_size=1&page=2"))),
            "dev",
            &dev_pw,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "2");
    let link = resp.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("rel=\"prev\""), "{link}");
    assert!(!link.contains("rel=\"next\""), "{link}");
    let page = json_body(resp).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["name"], "robot$team+build");
    let resp = app
        .as_basic(
            app.client
                .get(app.url(&format!("{list}%2Cname%3Drobot%24team%2Bdeploy"))),
            "dev",
            &dev_pw,
        )
        .send()
        .await
        .unwrap();
    let exact = json_body(resp).await;
    assert_eq!(exact.as_array().unwrap().len(), 1, "{exact}");
    assert_eq!(exact[0]["name"], "robot$team+deploy");
    for bad in [
        "/robots?q=Level%3Dproject",
        "/robots?q=Level%3Dsystem%2CProjectID%3D1",
        "/robots?q=Level%3Dglobal",
        "/robots?q=ProjectID%3Dabc",
        "/robots?q=colour%3Dred",
        "/robots?sort=colour",
        "/robots?page=0",
        "/robots?page_size=abc",
    ] {
        let resp = app
            .as_admin(app.client.get(app.url(bad)))
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "BAD_REQUEST").await;
    }
    let resp = app
        .as_admin(app.client.get(app.url("/robots?q=ProjectID%3D999999")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;

    // System robots: only for those with system robot:list.
    let resp = app
        .as_basic(app.client.get(app.url("/robots")), "owner", &owner_pw)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
    let resp = app
        .as_admin(app.client.get(app.url("/robots")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "1");
    assert_eq!(json_body(resp).await[0]["name"], "robot$sys");

    // Reading one: robot:read in its project; unseen projects hide it.
    let one = format!("/robots/{id}");
    let resp = app
        .as_basic(app.client.get(app.url(&one)), "dev", &dev_pw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json_body(resp).await["level"], "project");
    let resp = app
        .as_basic(app.client.get(app.url(&one)), "limited", &limited_pw)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
    let resp = app
        .as_basic(app.client.get(app.url(&one)), "outsider", &outsider_pw)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;

    // Update, refresh and delete: projectAdmin only.
    let current = json_body(
        app.as_admin(app.client.get(app.url(&one)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    for rb in [
        app.client.put(app.url(&one)).json(&current),
        app.client.patch(app.url(&one)).json(&json!({})),
        app.client.delete(app.url(&one)),
    ] {
        let resp = app.as_basic(rb, "dev", &dev_pw).send().await.unwrap();
        expect_error(resp, 403, "FORBIDDEN").await;
    }
    // A project robot stays in its project.
    let mut moved = current.clone();
    moved["permissions"][0]["namespace"] = json!("library");
    let resp = app
        .as_basic(app.client.put(app.url(&one)), "owner", &owner_pw)
        .json(&moved)
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    let mut changed = current.clone();
    changed["description"] = json!("changed by the owner");
    let resp = app
        .as_basic(app.client.put(app.url(&one)), "owner", &owner_pw)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .as_basic(app.client.patch(app.url(&one)), "owner", &owner_pw)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .as_basic(app.client.delete(app.url(&one)), "owner", &owner_pw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let entry = app.last_audit("robot").await.unwrap();
    assert_eq!(
        (
            entry.operation.as_str(),
            entry.username.as_str(),
            entry.project_id
        ),
        ("delete", "owner", Some(team.id))
    );
}

#[tokio::test]
async fn robots_creating_robots_cannot_grant_more_than_they_hold() {
    let app = ApiApp::spawn().await;
    project(&app, "team", false).await;
    let (maker_id, maker, maker_secret) = admin_robot(
        &app,
        system_robot(
            "maker",
            &[("robot", "create"), ("project", "list")],
            "library",
            &[
                ("repository", "pull"),
                ("repository", "push"),
                ("robot", "create"),
            ],
        ),
    )
    .await;
    let as_maker = |body: Value| {
        app.as_basic(app.client.post(app.url("/robots")), &maker, &maker_secret)
            .json(&body)
    };

    // Equal or narrower: allowed, and recorded as made by the robot.
    let resp = as_maker(system_robot(
        "narrow",
        &[("project", "list")],
        "library",
        &[("repository", "pull")],
    ))
    .send()
    .await
    .unwrap();
    let (narrow_id, _, _) = created(resp).await;
    let resp = app
        .as_admin(app.client.get(app.url(&format!("/robots/{narrow_id}"))))
        .send()
        .await
        .unwrap();
    let narrow = json_body(resp).await;
    assert_eq!(narrow["creator_type"], "robot");
    assert_eq!(narrow["creator_ref"], maker_id);
    let entry = app.last_audit("robot").await.unwrap();
    assert_eq!(entry.username, "robot$maker");
    let resp = as_maker(project_robot(
        "proj",
        "library",
        &[("repository", "pull"), ("repository", "push")],
    ))
    .send()
    .await
    .unwrap();
    created(resp).await;

    // Anything it does not hold itself: refused.
    for body in [
        system_robot("wider", &[], "library", &[("repository", "delete")]),
        system_robot("users", &[("user", "create")], "", &[]),
        system_robot("elsewhere", &[], "team", &[("repository", "pull")]),
        system_robot("all", &[], "*", &[("repository", "pull")]),
        project_robot(
            "projwide",
            "library",
            &[("repository", "pull"), ("artifact", "delete")],
        ),
    ] {
        let resp = as_maker(body.clone()).send().await.unwrap();
        let message = expect_error(resp, 403, "DENIED").await;
        assert!(message.contains("robot$maker"), "{body}: {message}");
    }
    // A project robot in a project where it has no robot:create at all.
    let resp = as_maker(project_robot(
        "teamrobot",
        "team",
        &[("repository", "pull")],
    ))
    .send()
    .await
    .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;

    // A robot granted `*` may hand out any single project.
    let (_, star, star_secret) = admin_robot(
        &app,
        system_robot(
            "star",
            &[("robot", "create")],
            "*",
            &[("repository", "pull")],
        ),
    )
    .await;
    let resp = app
        .as_basic(app.client.post(app.url("/robots")), &star, &star_secret)
        .json(&system_robot(
            "fromstar",
            &[],
            "team",
            &[("repository", "pull")],
        ))
        .send()
        .await
        .unwrap();
    created(resp).await;

    // Robots never hold robot:update, so they cannot change or refresh robots.
    let resp = app
        .as_basic(
            app.client.patch(app.url(&format!("/robots/{narrow_id}"))),
            &maker,
            &maker_secret,
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
    let robots: i64 = sqlx::query_scalar("SELECT count(*) FROM robots")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(robots, 5);
    // The robots made keep only what was asked for.
    let proj = wharf_projects::robots::list_robots(
        app.pool(),
        &wharf_projects::robots::RobotQuery {
            name: Some("library+proj".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let permissions = &proj.items[0].permissions;
    assert_eq!(permissions.len(), 1);
    assert_eq!(permissions[0].kind, PermissionKind::Project);
    assert_eq!(permissions[0].access.len(), 2);
}
