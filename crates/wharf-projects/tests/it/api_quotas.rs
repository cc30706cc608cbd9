//! `/quotas` and the project fields that carry a quota (`storage_limit`,
//! the summary's `quota`) through the real HTTP API.

use serde_json::{Value, json};
use wharf_projects::Role;

use crate::api_support::{ApiApp, expect_error, json_body, location};

const GIB: i64 = 1024 * 1024 * 1024;

async fn get(app: &ApiApp, path: &str) -> reqwest::Response {
    app.as_admin(app.client.get(app.url(path)))
        .send()
        .await
        .unwrap()
}

async fn quota_of(app: &ApiApp, project_id: i64) -> Value {
    let list = json_body(
        get(
            app,
            &format!("/quotas?reference=project&reference_id={project_id}"),
        )
        .await,
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    list[0].clone()
}

#[tokio::test]
async fn system_admins_list_read_and_change_quotas() {
    let app = ApiApp::spawn().await;
    let team = app.create_project("team", false).await;
    let ops = app.create_project("ops", false).await;

    let resp = get(&app, "/quotas").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "3");
    let all = json_body(resp).await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["ref"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["library", "team", "ops"], "ordered by quota id");

    let quota = quota_of(&app, team).await;
    let id = quota["id"].as_i64().unwrap();
    assert_eq!(
        quota["ref"],
        json!({"id": team, "name": "team", "owner_name": "admin"})
    );
    assert_eq!(quota["hard"], json!({"storage": -1}));
    assert_eq!(quota["used"], json!({"storage": 0}));
    assert!(quota["creation_time"].is_string() && quota["update_time"].is_string());
    assert_eq!(
        json_body(get(&app, &format!("/quotas/{id}")).await).await,
        quota
    );

    let resp = app
        .as_admin(app.client.put(app.url(&format!("/quotas/{id}"))))
        .json(&json!({"hard": {"storage": 10 * GIB}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let changed = json_body(get(&app, &format!("/quotas/{id}")).await).await;
    assert_eq!(changed["hard"], json!({"storage": 10 * GIB}));
    assert_ne!(changed["update_time"], quota["update_time"]);
    let project = json_body(get(&app, "/projects/team/summary").await).await;
    assert_eq!(project["quota"]["hard"], json!({"storage": 10 * GIB}));
    let audit = app.last_audit("quota").await.expect("audited");
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str()
        ),
        ("admin", "update", "team")
    );
    assert_eq!(audit.project_id, Some(team));
    assert!(
        audit.operation_description.contains("10.0 GiB"),
        "{}",
        audit.operation_description
    );

    // Sorting and paging, as Harbor's swagger names them.
    let sorted = json_body(get(&app, "/quotas?sort=-hard.storage").await).await;
    assert_eq!(sorted[0]["ref"]["name"], "team");
    let resp = get(&app, "/quotas?page=2&page_size=2").await;
    assert_eq!(resp.headers()["x-total-count"], "3");
    assert!(
        resp.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"prev\"")
    );
    let page = json_body(resp).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["ref"]["id"], ops);
    // Only projects have quotas.
    let none = get(&app, "/quotas?reference=user").await;
    assert_eq!(none.headers()["x-total-count"], "0");
    assert_eq!(json_body(none).await, json!([]));
    expect_error(get(&app, "/quotas?sort=colour").await, 400, "BAD_REQUEST").await;
    expect_error(
        get(&app, "/quotas?reference_id=team").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(get(&app, "/quotas/999999").await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn quota_updates_are_validated_like_harbor() {
    let app = ApiApp::spawn().await;
    let team = app.create_project("team", false).await;
    let id = quota_of(&app, team).await["id"].as_i64().unwrap();
    let put = |body: Value| {
        app.as_admin(app.client.put(app.url(&format!("/quotas/{id}"))))
            .json(&body)
            .send()
    };
    let cases = [
        (json!({}), "hard required in body"),
        (json!({"hard": {}}), "hard required in body"),
        (json!({"hard": {"count": 5}}), "resource count not support"),
        (json!({"hard": {"storage": 0}}), "invalid storage limit 0"),
        (json!({"hard": {"storage": -2}}), "invalid storage limit -2"),
        (
            json!({"hard": {"storage": 1024_i64 * 1024 * GIB + 1}}),
            "invalid storage limit",
        ),
    ];
    for (body, message) in cases {
        let got = expect_error(put(body.clone()).await.unwrap(), 400, "BAD_REQUEST").await;
        assert!(got.contains(message), "{body}: {got}");
    }
    let bad_json = app
        .as_admin(app.client.put(app.url(&format!("/quotas/{id}"))))
        .header("content-type", "application/json")
        .body("{\"hard\": {\"storage\": \"ten\"}}")
        .send()
        .await
        .unwrap();
    expect_error(bad_json, 400, "BAD_REQUEST").await;
    let missing = app
        .as_admin(app.client.put(app.url("/quotas/424242")))
        .json(&json!({"hard": {"storage": 5}}))
        .send()
        .await
        .unwrap();
    expect_error(missing, 404, "NOT_FOUND").await;
    assert_eq!(quota_of(&app, team).await["hard"], json!({"storage": -1}));
}

#[tokio::test]
async fn only_system_administrators_manage_quotas_and_members_read_their_own() {
    let app = ApiApp::spawn().await;
    let (owner, owner_pw) = app.create_user("olga").await;
    let (guest, guest_pw) = app.create_user("gus").await;
    let team = app.create_project("team", false).await;
    app.add_member(team, owner, Role::ProjectAdmin).await;
    app.add_member(team, guest, Role::Guest).await;
    let id = quota_of(&app, team).await["id"].as_i64().unwrap();

    for (who, pw) in [("olga", owner_pw.as_str()), ("gus", guest_pw.as_str())] {
        let as_user = |rb| app.as_basic(rb, who, pw);
        expect_error(
            as_user(app.client.get(app.url("/quotas")))
                .send()
                .await
                .unwrap(),
            403,
            "FORBIDDEN",
        )
        .await;
        expect_error(
            as_user(app.client.get(app.url(&format!("/quotas/{id}"))))
                .send()
                .await
                .unwrap(),
            403,
            "FORBIDDEN",
        )
        .await;
        expect_error(
            as_user(app.client.put(app.url(&format!("/quotas/{id}"))))
                .json(&json!({"hard": {"storage": GIB}}))
                .send()
                .await
                .unwrap(),
            403,
            "FORBIDDEN",
        )
        .await;
        // Every member may read the project's quota in its summary.
        let summary = json_body(
            as_user(app.client.get(app.url("/projects/team/summary")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            summary["quota"],
            json!({"hard": {"storage": -1}, "used": {"storage": 0}})
        );
        // Nor may a project admin change the limit through the project.
        expect_error(
            as_user(app.client.put(app.url("/projects/team")))
                .json(&json!({"storage_limit": GIB}))
                .send()
                .await
                .unwrap(),
            403,
            "FORBIDDEN",
        )
        .await;
    }
    expect_error(
        app.client.get(app.url("/quotas")).send().await.unwrap(),
        401,
        "UNAUTHORIZED",
    )
    .await;

    // A system robot granted quota read/list reads but cannot change.
    let (robot, secret) = app
        .robot(
            "quotareader",
            &[("system", "/", &[("quota", "list"), ("quota", "read")])],
        )
        .await;
    let as_robot = |rb| app.as_basic(rb, &robot, &secret);
    let resp = as_robot(app.client.get(app.url("/quotas")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = as_robot(app.client.get(app.url(&format!("/quotas/{id}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    expect_error(
        as_robot(app.client.put(app.url(&format!("/quotas/{id}"))))
            .json(&json!({"hard": {"storage": GIB}}))
            .send()
            .await
            .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(quota_of(&app, team).await["hard"], json!({"storage": -1}));
}

#[tokio::test]
async fn new_projects_get_the_default_limit_unless_an_administrator_chooses() {
    let app = ApiApp::spawn_with(|s| s.default_storage_limit = 5 * GIB).await;
    let (_, pw) = app.create_user("una").await;
    let create = |who: Option<(&str, &str)>, body: Value| {
        let rb = app.client.post(app.url("/projects")).json(&body);
        match who {
            Some((name, pw)) => app.as_basic(rb, name, pw),
            None => app.as_admin(rb),
        }
        .send()
    };
    let hard = |name: &'static str| {
        let app = &app;
        async move {
            json_body(get(app, &format!("/projects/{name}/summary")).await).await["quota"]["hard"]
                ["storage"]
                .as_i64()
                .unwrap()
        }
    };

    assert_eq!(
        create(None, json!({"project_name": "plain"}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(hard("plain").await, 5 * GIB);
    let resp = create(
        None,
        json!({"project_name": "chosen", "storage_limit": 1024}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(hard("chosen").await, 1024);
    let resp = create(
        None,
        json!({"project_name": "unlimited", "storage_limit": -1}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(hard("unlimited").await, -1);
    // Zero means "the default", as in Harbor.
    let resp = create(None, json!({"project_name": "zero", "storage_limit": 0}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(hard("zero").await, 5 * GIB);
    // Someone who is not a system administrator cannot choose.
    let resp = create(
        Some(("una", &pw)),
        json!({"project_name": "unas", "storage_limit": 1024}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201, "{}", location(&resp));
    assert_eq!(hard("unas").await, 5 * GIB);
    expect_error(
        create(None, json!({"project_name": "bad", "storage_limit": -7}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
}

#[tokio::test]
async fn updating_a_project_changes_its_quota() {
    let app = ApiApp::spawn().await;
    let team = app.create_project("team", false).await;
    let before = quota_of(&app, team).await;
    let resp = app
        .as_admin(app.client.put(app.url("/projects/team")))
        .json(&json!({"storage_limit": 2 * GIB}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let after = quota_of(&app, team).await;
    assert_eq!(after["hard"], json!({"storage": 2 * GIB}));
    assert_eq!(after["id"], before["id"]);
    assert_ne!(after["update_time"], before["update_time"]);
    for bad in [0, -3] {
        expect_error(
            app.as_admin(app.client.put(app.url("/projects/team")))
                .json(&json!({"storage_limit": bad}))
                .send()
                .await
                .unwrap(),
            400,
            "BAD_REQUEST",
        )
        .await;
    }
    assert_eq!(
        quota_of(&app, team).await["hard"],
        json!({"storage": 2 * GIB})
    );
}

#[tokio::test]
async fn the_summary_shows_real_usage() {
    let app = ApiApp::spawn().await;
    let team = app.create_project("team", false).await;
    // Usage arrives with pushes (see tests/it/quotas.rs and the gateway's
    // e2e tests); here the recorded number itself is what must show.
    sqlx::query("UPDATE project_quotas SET used = 4242 WHERE project_id = $1")
        .bind(team)
        .execute(app.pool())
        .await
        .unwrap();
    let summary = json_body(get(&app, "/projects/team/summary").await).await;
    assert_eq!(summary["quota"]["used"], json!({"storage": 4242}));
    assert_eq!(quota_of(&app, team).await["used"], json!({"storage": 4242}));
}

#[test]
fn the_openapi_document_has_harbors_quota_and_immutable_operations() {
    let doc = serde_json::to_value(wharf_projects::http::openapi()).unwrap();
    for (method, path, id) in [
        ("get", "/quotas", "listQuotas"),
        ("get", "/quotas/{id}", "getQuota"),
        ("put", "/quotas/{id}", "updateQuota"),
        (
            "get",
            "/projects/{project_name_or_id}/immutabletagrules",
            "ListImmuRules",
        ),
        (
            "post",
            "/projects/{project_name_or_id}/immutabletagrules",
            "CreateImmuRule",
        ),
        (
            "put",
            "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}",
            "UpdateImmuRule",
        ),
        (
            "delete",
            "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}",
            "DeleteImmuRule",
        ),
    ] {
        assert_eq!(
            doc["paths"][path][method]["operationId"].as_str(),
            Some(id),
            "{method} {path}"
        );
    }
}
