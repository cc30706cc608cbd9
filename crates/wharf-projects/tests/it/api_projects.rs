//! `/projects` through the real HTTP API: creation, visibility, updates,
//! deletion with repositories, summaries and metadata.

use serde_json::{Value, json};
use wharf_projects::Role;

use crate::api_support::{ApiApp, expect_error, json_body, location};

fn with_auth(
    app: &ApiApp,
    rb: reqwest::RequestBuilder,
    who: Option<(&str, &str)>,
) -> reqwest::RequestBuilder {
    match who {
        Some((name, secret)) => app.as_basic(rb, name, secret),
        None => rb,
    }
}

async fn get(app: &ApiApp, path: &str, who: Option<(&str, &str)>) -> reqwest::Response {
    with_auth(app, app.client.get(app.url(path)), who)
        .send()
        .await
        .unwrap()
}

async fn names(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 200);
    let list: Vec<Value> = resp.json().await.unwrap();
    list.iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A row in `repositories`, as the registry writes on the first push.
async fn add_repository(app: &ApiApp, project: &str, name: &str) {
    sqlx::query("INSERT INTO repositories (name, project) VALUES ($1, $2)")
        .bind(format!("{project}/{name}"))
        .bind(project)
        .execute(app.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_user_creates_a_project_and_owns_it() {
    let app = ApiApp::spawn().await;
    let (uid, password) = app.create_user("quinn").await;
    let me = Some(("quinn", password.as_str()));
    let resp = with_auth(&app, app.client.post(app.url("/projects")), me)
        .json(&json!({"project_name": "team-a", "metadata": {"auto_scan": "true"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let loc = location(&resp);
    assert!(loc.starts_with("/api/v2.0/projects/"), "{loc}");
    let id: i64 = loc.rsplit('/').next().unwrap().parse().unwrap();

    let project = json_body(get(&app, &format!("/projects/{id}"), me).await).await;
    assert_eq!(project["project_id"], id);
    assert_eq!(project["name"], "team-a");
    assert_eq!(project["owner_id"], uid);
    assert_eq!(project["owner_name"], "quinn");
    assert_eq!(project["current_user_role_id"], 1);
    assert_eq!(project["current_user_role_ids"], json!([1]));
    assert_eq!(project["repo_count"], 0);
    assert_eq!(project["deleted"], false);
    assert_eq!(project["registry_id"], Value::Null);
    assert_eq!(
        project["metadata"],
        json!({"auto_scan": "true", "public": "false"})
    );
    assert_eq!(project["cve_allowlist"]["items"], json!([]));
    assert_eq!(project["cve_allowlist"]["project_id"], id);
    assert!(project["creation_time"].is_string());

    // By name too, and a numeric name needs X-Is-Resource-Name.
    let by_name = json_body(get(&app, "/projects/team-a", me).await).await;
    assert_eq!(by_name["project_id"], id);
    let resp = with_auth(&app, app.client.post(app.url("/projects")), me)
        .header("X-Resource-Name-In-Location", "true")
        .json(&json!({"project_name": "2024", "public": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(location(&resp), "/api/v2.0/projects/2024");
    let numeric = with_auth(&app, app.client.get(app.url("/projects/2024")), me)
        .header("X-Is-Resource-Name", "true")
        .send()
        .await
        .unwrap();
    let numeric = json_body(numeric).await;
    assert_eq!(numeric["name"], "2024");
    assert_eq!(
        numeric["metadata"]["public"], "true",
        "deprecated `public` honoured"
    );

    let audit = app.last_audit("project").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str()
        ),
        ("quinn", "create", "2024")
    );
    assert_eq!(
        audit.project_id,
        Some(numeric["project_id"].as_i64().unwrap())
    );
    assert_eq!(audit.client_addr.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn project_creation_refuses_bad_input() {
    let app = ApiApp::spawn().await;
    let post = |body: Value| {
        app.as_admin(app.client.post(app.url("/projects")))
            .json(&body)
            .send()
    };
    let message = expect_error(
        post(json!({"project_name": "Bad Name"})).await.unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    assert!(
        message.contains("lowercase"),
        "the rule is explained: {message}"
    );
    expect_error(post(json!({})).await.unwrap(), 400, "BAD_REQUEST").await;
    let message = expect_error(
        post(json!({"project_name": "library"})).await.unwrap(),
        409,
        "CONFLICT",
    )
    .await;
    assert_eq!(message, "The project named library already exists");
    let message = expect_error(
        post(json!({"project_name": "proxy", "registry_id": 1}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    assert!(message.contains("proxy cache"), "{message}");
    expect_error(
        post(json!({"project_name": "p1", "metadata": {"public": "yes"}}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        post(json!({"project_name": "p1", "metadata": {"colour": "red"}}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        post(json!({"project_name": "p1", "storage_limit": -5}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        post(json!({"project_name": "p1", "cve_allowlist": {"items": [{"cve_id": "CVE-1"}]}}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    let bad_json = app
        .as_admin(app.client.post(app.url("/projects")))
        .header("content-type", "application/json")
        .body("[1,2")
        .send()
        .await
        .unwrap();
    expect_error(bad_json, 400, "BAD_REQUEST").await;
    let anonymous = app
        .client
        .post(app.url("/projects"))
        .json(&json!({"project_name": "p1"}))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, 401, "UNAUTHORIZED").await;
    assert!(
        app.audit_entries()
            .await
            .iter()
            .all(|e| e.resource_type != "project"),
        "refused requests change nothing"
    );
}

#[tokio::test]
async fn only_admins_choose_storage_limits_and_robots_need_a_grant() {
    let app = ApiApp::spawn().await;
    let (_, password) = app.create_user("rita").await;
    let rita = Some(("rita", password.as_str()));
    let create = |who: Option<(&str, &str)>, body: Value| {
        with_auth(&app, app.client.post(app.url("/projects")), who)
            .json(&body)
            .send()
    };
    let pool = app.pool().clone();
    let limit = |name: &'static str| {
        let pool = pool.clone();
        async move {
            wharf_projects::get_project_by_name(&pool, name)
                .await
                .unwrap()
                .storage_limit
        }
    };
    let admin = Some(("admin", app.admin_password.as_str()));
    assert_eq!(
        create(admin, json!({"project_name": "big", "storage_limit": 1024}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(limit("big").await, 1024);
    assert_eq!(
        create(rita, json!({"project_name": "mine", "storage_limit": 1024}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(limit("mine").await, -1, "a user's limit is the default");

    let (creator, secret) = app
        .robot("maker", &[("system", "/", &[("project", "create")])])
        .await;
    let resp = create(
        Some((&creator, &secret)),
        json!({"project_name": "by-robot"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let made = wharf_projects::get_project_by_name(app.pool(), "by-robot")
        .await
        .unwrap();
    assert_eq!(made.owner_name, "admin", "robots' projects belong to admin");
    let audit = app.last_audit("project").await.unwrap();
    assert_eq!(audit.username, creator);

    let (lister, secret) = app
        .robot("lister", &[("system", "/", &[("project", "list")])])
        .await;
    expect_error(
        create(Some((&lister, &secret)), json!({"project_name": "nope"}))
            .await
            .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn listings_show_what_each_caller_may_see() {
    let app = ApiApp::spawn().await;
    let (sam, password) = app.create_user("sam").await;
    let sam_auth = Some(("sam", password.as_str()));
    let open = app.create_project("open", true).await;
    let hidden = app.create_project("hidden", false).await;
    let team = app.create_project("team", false).await;
    app.add_member(team, sam, Role::Developer).await;
    let admin = Some(("admin", app.admin_password.as_str()));

    assert_eq!(
        names(get(&app, "/projects", None).await).await,
        ["library", "open"]
    );
    assert_eq!(
        names(get(&app, "/projects", sam_auth).await).await,
        ["library", "open", "team"]
    );
    assert_eq!(
        names(get(&app, "/projects", admin).await).await,
        ["hidden", "library", "open", "team"]
    );

    let private_for_anonymous = get(&app, "/projects?public=false", None).await;
    assert_eq!(private_for_anonymous.headers()["x-total-count"], "0");
    assert!(names(private_for_anonymous).await.is_empty());
    assert_eq!(
        names(get(&app, "/projects?public=false", sam_auth).await).await,
        ["team"]
    );
    assert_eq!(
        names(get(&app, "/projects?name=en", admin).await).await,
        ["hidden", "open"]
    );
    assert_eq!(
        names(get(&app, "/projects?q=name%3Dteam", admin).await).await,
        ["team"]
    );
    assert_eq!(
        names(get(&app, "/projects?q=public%3Dtrue", admin).await).await,
        ["library", "open"]
    );
    assert_eq!(
        names(
            get(
                &app,
                &format!("/projects?q=project_id%3D%7B{open}%20{hidden}%7D"),
                admin
            )
            .await
        )
        .await,
        ["hidden", "open"]
    );
    assert_eq!(
        names(get(&app, "/projects?owner=sam", admin).await).await,
        Vec::<String>::new()
    );
    assert_eq!(
        names(get(&app, "/projects?q=owner%3Dadmin&sort=-name", admin).await).await,
        ["team", "open", "library", "hidden"]
    );
    expect_error(
        get(&app, "/projects?q=colour%3Dred", admin).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        get(&app, "/projects?sort=size", admin).await,
        400,
        "BAD_REQUEST",
    )
    .await;

    let paged = get(&app, "/projects?page=2&page_size=1", admin).await;
    assert_eq!(paged.headers()["x-total-count"], "4");
    let link = paged.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("rel=\"prev\"") && link.contains("rel=\"next\""),
        "{link}"
    );
    assert_eq!(names(paged).await, ["library"]);

    // The caller's role comes with each project.
    let listed: Vec<Value> = get(&app, "/projects?name=team", sam_auth)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["current_user_role_id"], Role::Developer.id());
    // An administrator who created a project holds its projectAdmin role.
    let by_admin = json_body(get(&app, &format!("/projects/{open}"), admin).await).await;
    assert_eq!(by_admin["current_user_role_ids"], json!([1]));
    let listed: Vec<Value> = get(&app, "/projects?name=open", admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["current_user_role_id"], 1);
    add_repository(&app, "team", "app").await;
    let listed: Vec<Value> = get(&app, "/projects?name=team", sam_auth)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["repo_count"], 1);

    // A robot sees its granted projects and public ones.
    let (robot, secret) = app
        .robot(
            "reader",
            &[
                ("system", "/", &[("project", "create")]),
                ("project", "hidden", &[("repository", "pull")]),
            ],
        )
        .await;
    assert_eq!(
        names(get(&app, "/projects", Some((&robot, &secret))).await).await,
        ["hidden", "library", "open"]
    );
}

#[tokio::test]
async fn private_projects_are_not_found_for_outsiders() {
    let app = ApiApp::spawn().await;
    let (_, password) = app.create_user("tess").await;
    let tess = Some(("tess", password.as_str()));
    let id = app.create_project("vault", false).await;
    for path in [
        format!("/projects/{id}"),
        "/projects/vault".to_owned(),
        "/projects/vault/summary".to_owned(),
        "/projects/vault/_deletable".to_owned(),
        "/projects/vault/metadatas/".to_owned(),
        "/projects/vault/metadatas/public".to_owned(),
        "/projects/vault/members".to_owned(),
    ] {
        expect_error(get(&app, &path, tess).await, 404, "NOT_FOUND").await;
        expect_error(get(&app, &path, None).await, 404, "NOT_FOUND").await;
    }
    expect_error(get(&app, "/projects/nowhere", tess).await, 404, "NOT_FOUND").await;
    let update = with_auth(&app, app.client.put(app.url("/projects/vault")), tess)
        .json(&json!({"metadata": {"public": "true"}}))
        .send()
        .await
        .unwrap();
    expect_error(update, 404, "NOT_FOUND").await;

    // HEAD tells signed-in users the name is taken, anonymous ones nothing.
    let head = |name: &str, who: Option<(&str, &str)>| {
        with_auth(
            &app,
            app.client
                .head(app.url(&format!("/projects?project_name={name}"))),
            who,
        )
        .send()
    };
    assert_eq!(head("vault", tess).await.unwrap().status(), 200);
    assert_eq!(head("vault", None).await.unwrap().status(), 404);
    assert_eq!(head("library", None).await.unwrap().status(), 200);
    assert_eq!(head("nowhere", tess).await.unwrap().status(), 404);
    let missing = with_auth(&app, app.client.head(app.url("/projects")), tess)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
}

#[tokio::test]
async fn project_admins_update_settings_and_admins_the_quota() {
    let app = ApiApp::spawn().await;
    let (owner, owner_pw) = app.create_user("uma").await;
    let (dev, dev_pw) = app.create_user("vic").await;
    let id = app.create_project("settings", false).await;
    app.add_member(id, owner, Role::ProjectAdmin).await;
    app.add_member(id, dev, Role::Developer).await;
    let put = |who: Option<(&str, &str)>, body: Value| {
        with_auth(
            &app,
            app.client.put(app.url(&format!("/projects/{id}"))),
            who,
        )
        .json(&body)
        .send()
    };
    let uma = Some(("uma", owner_pw.as_str()));

    let ok = put(
        uma,
        json!({"metadata": {"auto_scan": "true", "severity": "High", "public": "true"}}),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let stored = wharf_projects::get_project(app.pool(), id).await.unwrap();
    assert_eq!(stored.metadata["auto_scan"], "true");
    assert_eq!(stored.metadata["severity"], "high");
    assert!(stored.is_public());
    let audit = app.last_audit("project").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str()
        ),
        ("uma", "update", "settings")
    );
    assert_eq!(audit.project_id, Some(id));
    assert!(audit.operation_description.contains("auto_scan=true"));

    expect_error(
        put(
            Some(("vic", &dev_pw)),
            json!({"metadata": {"auto_scan": "false"}}),
        )
        .await
        .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    // Public now, so anonymous callers see it and are asked to sign in.
    expect_error(
        put(None, json!({"metadata": {"auto_scan": "false"}}))
            .await
            .unwrap(),
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(
        put(uma, json!({"metadata": {"severity": "extreme"}}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        put(uma, json!({"storage_limit": 10})).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    // Sending the current limit back is not a change.
    assert_eq!(
        put(uma, json!({"storage_limit": -1, "metadata": {}}))
            .await
            .unwrap()
            .status(),
        200
    );
    let admin = Some(("admin", app.admin_password.as_str()));
    assert_eq!(
        put(admin, json!({"storage_limit": 4096}))
            .await
            .unwrap()
            .status(),
        200
    );
    let summary = json_body(get(&app, &format!("/projects/{id}/summary"), uma).await).await;
    assert_eq!(summary["quota"]["hard"]["storage"], 4096);
    assert_eq!(summary["quota"]["used"]["storage"], 0);
}

#[tokio::test]
async fn projects_with_repositories_cannot_be_deleted() {
    let app = ApiApp::spawn().await;
    let (owner, password) = app.create_user("walt").await;
    let (guest, guest_pw) = app.create_user("xena").await;
    let id = app.create_project("doomed", false).await;
    app.add_member(id, owner, Role::ProjectAdmin).await;
    app.add_member(id, guest, Role::Guest).await;
    let walt = Some(("walt", password.as_str()));
    add_repository(&app, "doomed", "app").await;

    let deletable = json_body(get(&app, "/projects/doomed/_deletable", walt).await).await;
    assert_eq!(
        deletable,
        json!({"deletable": false, "message": "the project contains repositories, can not be deleted"})
    );
    let delete = |who: Option<(&str, &str)>| {
        with_auth(&app, app.client.delete(app.url("/projects/doomed")), who).send()
    };
    let message = expect_error(delete(walt).await.unwrap(), 412, "PRECONDITION").await;
    assert!(message.contains("repositories"), "{message}");
    expect_error(
        delete(Some(("xena", &guest_pw))).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        get(
            &app,
            "/projects/doomed/_deletable",
            Some(("xena", &guest_pw)),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;

    sqlx::query("DELETE FROM repositories WHERE project = 'doomed'")
        .execute(app.pool())
        .await
        .unwrap();
    let deletable = json_body(get(&app, "/projects/doomed/_deletable", walt).await).await;
    assert_eq!(deletable, json!({"deletable": true}));
    assert_eq!(delete(walt).await.unwrap().status(), 200);
    expect_error(
        get(
            &app,
            &format!("/projects/{id}"),
            Some(("admin", &app.admin_password)),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    let audit = app.last_audit("project").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str(),
            audit.project_id
        ),
        ("walt", "delete", "doomed", Some(id))
    );
    // The name can be used again.
    app.create_project("doomed", false).await;
}

#[tokio::test]
async fn summaries_count_members_by_role() {
    let app = ApiApp::spawn().await;
    let id = app.create_project("counted", false).await;
    let mut guest_password = String::new();
    for (name, role) in [
        ("m1", Role::Maintainer),
        ("d1", Role::Developer),
        ("d2", Role::Developer),
        ("g1", Role::Guest),
        ("l1", Role::LimitedGuest),
    ] {
        let (uid, password) = app.create_user(name).await;
        app.add_member(id, uid, role).await;
        if name == "g1" {
            guest_password = password;
        }
    }
    add_repository(&app, "counted", "a").await;
    add_repository(&app, "counted", "b").await;
    let summary = json_body(
        get(
            &app,
            "/projects/counted/summary",
            Some(("g1", &guest_password)),
        )
        .await,
    )
    .await;
    assert_eq!(summary["repo_count"], 2);
    // The creator (admin) is the project admin.
    assert_eq!(summary["project_admin_count"], 1);
    assert_eq!(summary["maintainer_count"], 1);
    assert_eq!(summary["developer_count"], 2);
    assert_eq!(summary["guest_count"], 1);
    assert_eq!(summary["limited_guest_count"], 1);
    assert_eq!(summary["quota"]["hard"]["storage"], -1);

    // A limited guest may not list members, so gets no member counts.
    let (_, password) = app.create_user("l2").await;
    let l2 = wharf_projects::get_user_by_name(app.pool(), "l2")
        .await
        .unwrap();
    app.add_member(id, l2.id, Role::LimitedGuest).await;
    let limited =
        json_body(get(&app, "/projects/counted/summary", Some(("l2", &password))).await).await;
    assert_eq!(limited["repo_count"], 2);
    assert!(limited.get("guest_count").is_none(), "{limited}");
    assert!(limited["quota"].is_object());
}

#[tokio::test]
async fn metadata_entries_are_managed_one_at_a_time() {
    let app = ApiApp::spawn().await;
    let (owner, password) = app.create_user("yara").await;
    let (maint, maint_pw) = app.create_user("zack").await;
    let id = app.create_project("meta", false).await;
    app.add_member(id, owner, Role::ProjectAdmin).await;
    app.add_member(id, maint, Role::Maintainer).await;
    let yara = Some(("yara", password.as_str()));
    let zack = Some(("zack", maint_pw.as_str()));
    let send = |rb: reqwest::RequestBuilder, who: Option<(&str, &str)>, body: Option<Value>| {
        let rb = with_auth(&app, rb, who);
        let rb = match body {
            Some(body) => rb.json(&body),
            None => rb,
        };
        rb.send()
    };
    let url = |tail: &str| app.url(&format!("/projects/meta/metadatas/{tail}"));

    let all = json_body(get(&app, "/projects/meta/metadatas/", zack).await).await;
    assert_eq!(all, json!({"public": "false"}));
    let without_slash = json_body(get(&app, "/projects/meta/metadatas", yara).await).await;
    assert_eq!(without_slash, all);

    let added = send(
        app.client.post(url("")),
        yara,
        Some(json!({"auto_scan": "TRUE"})),
    )
    .await
    .unwrap();
    assert_eq!(added.status(), 200);
    let one = json_body(get(&app, "/projects/meta/metadatas/auto_scan", zack).await).await;
    assert_eq!(one, json!({"auto_scan": "true"}));
    let audit = app.last_audit("project_metadata").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str(),
            audit.project_id
        ),
        ("yara", "create", "auto_scan", Some(id))
    );

    expect_error(
        send(
            app.client.post(url("")),
            yara,
            Some(json!({"auto_scan": "false"})),
        )
        .await
        .unwrap(),
        409,
        "CONFLICT",
    )
    .await;
    expect_error(
        send(
            app.client.post(url("")),
            yara,
            Some(json!({"prevent_vul": "true", "severity": "low"})),
        )
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        send(
            app.client.post(url("")),
            yara,
            Some(json!({"colour": "red"})),
        )
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        send(
            app.client.post(url("")),
            zack,
            Some(json!({"prevent_vul": "true"})),
        )
        .await
        .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;

    let updated = send(
        app.client.put(url("auto_scan")),
        yara,
        Some(json!({"auto_scan": "false"})),
    )
    .await
    .unwrap();
    assert_eq!(updated.status(), 200);
    assert_eq!(
        wharf_projects::get_project(app.pool(), id)
            .await
            .unwrap()
            .metadata["auto_scan"],
        "false"
    );
    assert_eq!(
        app.last_audit("project_metadata").await.unwrap().operation,
        "update"
    );
    expect_error(
        send(
            app.client.put(url("severity")),
            yara,
            Some(json!({"severity": "low"})),
        )
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        send(
            app.client.put(url("auto_scan")),
            yara,
            Some(json!({"public": "true"})),
        )
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        send(
            app.client.put(url("auto_scan")),
            zack,
            Some(json!({"auto_scan": "true"})),
        )
        .await
        .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;

    expect_error(
        send(app.client.delete(url("auto_scan")), zack, None)
            .await
            .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    let removed = send(app.client.delete(url("auto_scan")), yara, None)
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    assert_eq!(
        app.last_audit("project_metadata").await.unwrap().operation,
        "delete"
    );
    expect_error(
        get(&app, "/projects/meta/metadatas/auto_scan", yara).await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        send(app.client.delete(url("auto_scan")), yara, None)
            .await
            .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}
