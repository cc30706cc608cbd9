//! `/search` and `/statistics` through the real HTTP API: what each kind of
//! caller finds and counts, with registry rows written into the database.

use serde_json::Value;
use wharf_projects::Role;

use crate::api_support::{ApiApp, expect_error, json_body};
use crate::seed_artifacts::{CONFIG_SIZE, artifact, index};

/// Projects: library (public), shop (public), vault (private, `mia` is a
/// developer), hidden (private, nobody). Repositories with known artifacts
/// and blobs; returns mia's password.
async fn estate(app: &ApiApp) -> String {
    let shop = app.create_project("shop", true).await;
    let vault = app.create_project("vault", false).await;
    app.create_project("hidden", false).await;
    let (mia, pw) = app.create_user("mia").await;
    app.add_member(vault, mia, Role::Developer).await;
    let _ = shop;
    let pool = app.pool();
    // A layer shared by three repositories in three projects counts once.
    let shared = ("sha256:".to_owned() + &"a".repeat(64), 1000);
    let own = ("sha256:".to_owned() + &"b".repeat(64), 500);
    artifact(pool, "library/web", &["v1"], &[(&shared.0, shared.1)]).await;
    artifact(pool, "library/web", &["v2"], &[(&shared.0, shared.1)]).await;
    let amd = artifact(pool, "shop/web-app", &[], &[(&shared.0, shared.1)]).await;
    let arm = artifact(pool, "shop/web-app", &[], &[(&own.0, own.1)]).await;
    index(pool, "shop/web-app", &["latest"], &[&amd, &arm]).await;
    artifact(pool, "vault/web-secrets", &["v1"], &[(&shared.0, shared.1)]).await;
    artifact(pool, "vault/db", &["v1"], &[]).await;
    artifact(pool, "hidden/web-hidden", &["v1"], &[]).await;
    pw
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_finds_what_the_caller_may_see() {
    let app = ApiApp::spawn().await;
    let pw = estate(&app).await;
    let get = |who: Option<(&str, &str)>, q: &str| {
        let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let mut rb = app.client.get(app.url(&format!("/search?q={q}")));
        if let Some((name, secret)) = who {
            rb = app.as_basic(rb, name, secret);
        }
        async move { json_body(rb.send().await.unwrap()).await }
    };
    let admin = Some(("admin", app.admin_password.as_str()));
    let mia = Some(("mia", pw.as_str()));

    let found = get(admin, "web").await;
    assert!(
        found["project"].as_array().unwrap().is_empty(),
        "no project is named web"
    );
    assert_eq!(
        names(&found["repository"], "repository_name"),
        [
            "hidden/web-hidden",
            "library/web",
            "shop/web-app",
            "vault/web-secrets"
        ]
    );
    let shop = found["repository"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository_name"] == "shop/web-app")
        .unwrap();
    assert_eq!(shop["project_name"], "shop");
    assert_eq!(shop["project_public"], true);
    assert_eq!(shop["artifact_count"], 1, "the index, not its children");
    assert_eq!(shop["pull_count"], 0);
    assert!(shop["project_id"].as_i64().unwrap() > 0);

    let found = get(mia, "web").await;
    assert_eq!(
        names(&found["repository"], "repository_name"),
        ["library/web", "shop/web-app", "vault/web-secrets"]
    );
    let secrets = &found["repository"][2];
    assert_eq!(
        (
            secrets["project_public"].as_bool(),
            secrets["artifact_count"].as_i64()
        ),
        (Some(false), Some(1))
    );
    let found = get(None, "WEB").await;
    assert_eq!(
        names(&found["repository"], "repository_name"),
        ["library/web", "shop/web-app"],
        "anonymous: public projects only, case ignored"
    );

    // Projects by name, in the shape of GET /projects.
    let found = get(admin, "a").await;
    assert_eq!(names(&found["project"], "name"), ["library", "vault"]);
    let found = get(mia, "v").await;
    let vault = &found["project"][0];
    assert_eq!(names(&found["project"], "name"), ["vault"]);
    assert_eq!(vault["current_user_role_id"], 2);
    assert_eq!(vault["repo_count"], 2);
    assert_eq!(vault["metadata"]["public"], "false");
    assert_eq!(
        names(&found["repository"], "repository_name"),
        ["vault/db", "vault/web-secrets"],
        "a project's name is part of its repositories' names"
    );
    let found = get(None, "i").await;
    assert_eq!(names(&found["project"], "name"), ["library"]);
    let found = get(admin, "hid").await;
    assert_eq!(names(&found["project"], "name"), ["hidden"]);
    let found = get(admin, "zzz").await;
    assert_eq!(found, serde_json::json!({"project": [], "repository": []}));

    let resp = app.client.get(app.url("/search")).send().await.unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;
    // `%` and `_` are text, not wildcards.
    let found = get(admin, "%").await;
    assert!(found["repository"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn statistics_count_what_the_caller_may_see() {
    let app = ApiApp::spawn().await;
    let pw = estate(&app).await;
    let get = |who: Option<(&str, &str)>| {
        let mut rb = app.client.get(app.url("/statistics"));
        if let Some((name, secret)) = who {
            rb = app.as_basic(rb, name, secret);
        }
        rb.send()
    };
    let admin = json_body(
        get(Some(("admin", app.admin_password.as_str())))
            .await
            .unwrap(),
    )
    .await;
    let manifest_bytes: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(size), 0)::bigint FROM blobs WHERE digest IN (SELECT digest FROM manifests)",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        admin,
        serde_json::json!({
            "public_project_count": 2,
            "public_repo_count": 2,
            "private_project_count": 2,
            "private_repo_count": 3,
            "total_project_count": 4,
            "total_repo_count": 5,
            // Two layers and the shared config, each once, and every manifest's bytes.
            "total_storage_consumption": 1500 + CONFIG_SIZE + manifest_bytes,
        })
    );

    let mia = json_body(get(Some(("mia", pw.as_str()))).await.unwrap()).await;
    assert_eq!(
        mia,
        serde_json::json!({
            "public_project_count": 2,
            "public_repo_count": 2,
            "private_project_count": 1,
            "private_repo_count": 2,
            "total_project_count": 0,
            "total_repo_count": 0,
            "total_storage_consumption": 0,
        })
    );

    // A robot sees the projects it is granted.
    let (robot, secret) = app
        .robot("stats", &[("project", "hidden", &[("repository", "pull")])])
        .await;
    let seen = json_body(get(Some((robot.as_str(), secret.as_str()))).await.unwrap()).await;
    assert_eq!(
        (
            seen["private_project_count"].as_i64(),
            seen["private_repo_count"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(seen["total_storage_consumption"], 0);

    expect_error(get(None).await.unwrap(), 401, "UNAUTHORIZED").await;
}
