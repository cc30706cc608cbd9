//! `/audit-logs` and a project's `/logs` and `/auditlog-exts`: who sees
//! which entries, and the filters.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use wharf_projects::audit::{AuditEntry, record};
use wharf_projects::{Project, Role};

use crate::api_robots::{admin_robot, member, project, project_robot, system_robot, user};
use crate::api_support::{ApiApp, expect_error, json_body};

/// Write one entry straight into the log (as the registry or another
/// handler would).
async fn entry(
    app: &ApiApp,
    project: Option<&Project>,
    username: &str,
    operation: &str,
    resource_type: &str,
    resource: &str,
    success: bool,
) {
    record(
        app.pool(),
        &AuditEntry {
            project_id: project.map(|p| p.id),
            username,
            operation,
            description: &format!("{username} did {operation} on {resource}"),
            success,
            resource_type,
            resource,
            client_addr: Some("192.0.2.7"),
        },
    )
    .await
    .expect("entry recorded");
}

async fn set_time(app: &ApiApp, resource: &str, time: &str) {
    let done = sqlx::query("UPDATE audit_logs SET op_time = $2::timestamptz WHERE resource = $1")
        .bind(resource)
        .bind(time)
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

/// The resources of entries in `project` (`None`: every entry), from the
/// database.
async fn resources_in(app: &ApiApp, project: Option<i64>) -> BTreeSet<String> {
    sqlx::query_scalar(
        "SELECT resource FROM audit_logs WHERE $1::bigint IS NULL OR project_id = $1",
    )
    .bind(project)
    .fetch_all(app.pool())
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// GET `path` with Basic credentials (or none); status, total and body.
async fn get(
    app: &ApiApp,
    path: &str,
    who: Option<(&str, &str)>,
) -> (StatusCode, Option<i64>, Value) {
    let mut rb = app.client.get(app.url(path));
    if let Some((name, secret)) = who {
        rb = app.as_basic(rb, name, secret);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status();
    let total = resp
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, total, json_body(resp).await)
}

fn resources(body: &Value) -> BTreeSet<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|e| e["resource"].as_str().unwrap().to_owned())
        .collect()
}

fn keys(entry: &Value) -> BTreeSet<&str> {
    entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

struct World {
    app: ApiApp,
    alpha: Project,
    beta: Project,
    alice: String,
    dave: String,
    bob: String,
    carol: String,
}

/// alpha (alice projectAdmin, dave developer) and beta (bob projectAdmin),
/// both private; carol belongs nowhere. Entries in alpha at known times,
/// one in beta, one system entry.
async fn world() -> World {
    let app = ApiApp::spawn().await;
    let alpha = project(&app, "alpha", false).await;
    let beta = project(&app, "beta", false).await;
    let (alice_user, alice) = user(&app, "alice").await;
    let (dave_user, dave) = user(&app, "dave").await;
    let (bob_user, bob) = user(&app, "bob").await;
    let (_, carol) = user(&app, "carol").await;
    member(&app, &alpha, &alice_user, Role::ProjectAdmin).await;
    member(&app, &alpha, &dave_user, Role::Developer).await;
    member(&app, &beta, &bob_user, Role::ProjectAdmin).await;
    entry(
        &app,
        Some(&alpha),
        "alice",
        "create",
        "repository",
        "alpha/app",
        true,
    )
    .await;
    entry(
        &app,
        Some(&alpha),
        "dave",
        "pull",
        "artifact",
        "alpha/app:v1",
        true,
    )
    .await;
    entry(
        &app,
        Some(&alpha),
        "dave",
        "delete",
        "artifact",
        "alpha/app:v2",
        false,
    )
    .await;
    entry(
        &app,
        Some(&beta),
        "bob",
        "create",
        "artifact",
        "beta/web:1",
        true,
    )
    .await;
    entry(&app, None, "admin", "create", "user", "carol", true).await;
    set_time(&app, "alpha/app", "2024-01-01 10:00:00+00").await;
    set_time(&app, "alpha/app:v1", "2024-01-02 10:00:00+00").await;
    set_time(&app, "alpha/app:v2", "2024-01-03 10:00:00+00").await;
    World {
        app,
        alpha,
        beta,
        alice,
        dave,
        bob,
        carol,
    }
}

const ALL: &str = "/audit-logs?page_size=100";

#[tokio::test]
async fn each_caller_sees_the_entries_of_projects_where_it_may_list_the_log() {
    let w = world().await;
    let app = &w.app;
    // Robots: one with the system audit-log:list, one with log:list in alpha,
    // one with log:list in every project. Creating them writes entries too.
    let (_, auditor, auditor_secret) = admin_robot(
        app,
        system_robot("auditor", &[("audit-log", "list")], "", &[]),
    )
    .await;
    let (_, alpha_bot, alpha_bot_secret) =
        admin_robot(app, project_robot("logs", "alpha", &[("log", "list")])).await;
    let (_, everywhere, everywhere_secret) = admin_robot(
        app,
        system_robot("everywhere", &[], "*", &[("log", "list")]),
    )
    .await;
    let every = resources_in(app, None).await;
    let in_alpha = resources_in(app, Some(w.alpha.id)).await;
    let in_beta = resources_in(app, Some(w.beta.id)).await;
    assert!(in_alpha.contains("alpha/app:v2") && in_alpha.contains("robot$alpha+logs"));
    assert_eq!(in_beta, BTreeSet::from(["beta/web:1".to_owned()]));

    // Everything for admin and the system auditor robot.
    let admin = app.admin_password.clone();
    for who in [
        ("admin", admin.as_str()),
        (auditor.as_str(), auditor_secret.as_str()),
    ] {
        let (status, total, body) = get(app, ALL, Some(who)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(total, Some(every.len() as i64), "{who:?}");
        assert_eq!(resources(&body), every, "{who:?}");
    }
    // A project admin: that project only; a robot granted log:list likewise.
    for who in [
        ("alice", w.alice.as_str()),
        (alpha_bot.as_str(), alpha_bot_secret.as_str()),
    ] {
        let (status, total, body) = get(app, ALL, Some(who)).await;
        assert_eq!(status, 200);
        assert_eq!(total, Some(in_alpha.len() as i64), "{who:?}");
        assert_eq!(resources(&body), in_alpha, "{who:?}");
    }
    let (_, _, body) = get(app, ALL, Some(("bob", &w.bob))).await;
    assert_eq!(resources(&body), in_beta);
    // A `*` grant covers every project, but not system entries.
    let (_, _, body) = get(app, ALL, Some((&everywhere, &everywhere_secret))).await;
    let seen = resources(&body);
    assert!(seen.is_superset(&in_alpha) && seen.is_superset(&in_beta));
    assert!(
        !seen.contains("carol") && !seen.contains("robot$auditor"),
        "{seen:?}"
    );
    // A developer, or somebody in no project: nothing, but not an error.
    for who in [("dave", w.dave.as_str()), ("carol", w.carol.as_str())] {
        let (status, total, body) = get(app, ALL, Some(who)).await;
        assert_eq!(status, 200);
        assert_eq!(total, Some(0), "{who:?}");
        assert_eq!(body, serde_json::json!([]));
    }
    // Anonymous callers must sign in.
    let resp = app.client.get(app.url("/audit-logs")).send().await.unwrap();
    expect_error(resp, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn audit_log_filters_sorting_and_paging() {
    let w = world().await;
    let app = &w.app;
    let admin_pw = app.admin_password.clone();
    let admin = Some(("admin", admin_pw.as_str()));
    let found = |query: &'static str| async move {
        let (status, total, body) = get(app, &format!("/audit-logs?{query}"), admin).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(
            total,
            Some(body.as_array().unwrap().len() as i64),
            "{query}"
        );
        resources(&body)
    };
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        found("q=username%3Ddave").await,
        set(&["alpha/app:v1", "alpha/app:v2"])
    );
    assert_eq!(
        found("q=username%3D~av").await,
        set(&["alpha/app:v1", "alpha/app:v2"])
    );
    assert_eq!(found("q=username%3Dda").await, set(&[]));
    assert_eq!(
        found("q=resource%3D~alpha%2Fapp").await,
        set(&["alpha/app", "alpha/app:v1", "alpha/app:v2"])
    );
    assert_eq!(found("q=resource%3Dalpha%2Fapp").await, set(&["alpha/app"]));
    assert_eq!(found("q=resource_type%3Duser").await, set(&["carol"]));
    assert_eq!(found("q=resource_type%3D~repo").await, set(&["alpha/app"]));
    assert_eq!(found("q=operation%3Ddelete").await, set(&["alpha/app:v2"]));
    assert_eq!(found("q=operation%3D~pul").await, set(&["alpha/app:v1"]));
    assert_eq!(
        found("q=operation%3Dcreate%2Cresource_type%3Dartifact").await,
        set(&["beta/web:1"])
    );
    // Time ranges, in Harbor's format (UTC) or RFC 3339, open at either end.
    assert_eq!(
        found("q=op_time%3D%5B2024-01-02%2000%3A00%3A00~2024-01-02%2023%3A59%3A59%5D").await,
        set(&["alpha/app:v1"])
    );
    assert_eq!(
        found("q=op_time%3D%5B~2024-01-02T12%3A00%3A00Z%5D").await,
        set(&["alpha/app", "alpha/app:v1"])
    );
    assert_eq!(
        found("q=op_time%3D%5B2024-01-02T13%3A00%3A00%2B02%3A00~2024-01-31%2000%3A00%3A00%5D")
            .await,
        set(&["alpha/app:v2"])
    );

    // Newest first by default; `sort=op_time` for oldest first.
    let (_, _, newest) = get(app, ALL, admin).await;
    assert_eq!(
        newest.as_array().unwrap().last().unwrap()["resource"],
        "alpha/app"
    );
    let (_, _, oldest) = get(app, "/audit-logs?sort=op_time&page_size=100", admin).await;
    let oldest: Vec<&str> = oldest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].as_str().unwrap())
        .collect();
    assert_eq!(&oldest[..3], ["alpha/app", "alpha/app:v1", "alpha/app:v2"]);

    // Harbor's AuditLog shape, nothing more.
    let first = &newest[0];
    assert_eq!(
        keys(first),
        BTreeSet::from([
            "id",
            "username",
            "resource",
            "resource_type",
            "operation",
            "op_time"
        ])
    );
    assert!(first["id"].is_i64());
    assert!(chrono::DateTime::parse_from_rfc3339(first["op_time"].as_str().unwrap()).is_ok());

    // Paging.
    let resp = app
        .as_admin(app.client.get(app.url("/audit-logs?page_size=2")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "5");
    let link = resp.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("rel=\"next\"") && link.contains("page=2"),
        "{link}"
    );
    assert_eq!(json_body(resp).await.as_array().unwrap().len(), 2);

    for bad in [
        "q=colour%3Dred",
        "q=op_time%3Dyesterday",
        "q=op_time%3D%5Byesterday~%5D",
        "q=username%3D%5Ba~b%5D",
        "q=operation%3D%7Bcreate%20delete%7D",
        "sort=username",
        "page_size=1000",
        "page=abc",
    ] {
        let resp = app
            .as_admin(app.client.get(app.url(&format!("/audit-logs?{bad}"))))
            .send()
            .await
            .unwrap();
        expect_error(resp, 400, "BAD_REQUEST").await;
    }
}

#[tokio::test]
async fn a_projects_logs_are_for_those_who_may_list_its_log() {
    let w = world().await;
    let app = &w.app;
    let logs = "/projects/alpha/logs?page_size=100";
    let exts = "/projects/alpha/auditlog-exts?page_size=100";
    let in_alpha = resources_in(app, Some(w.alpha.id)).await;

    let (status, total, body) = get(app, logs, Some(("alice", &w.alice))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(total, Some(3));
    assert_eq!(resources(&body), in_alpha);
    assert_eq!(
        keys(&body[0]),
        BTreeSet::from([
            "id",
            "username",
            "resource",
            "resource_type",
            "operation",
            "op_time"
        ])
    );
    let (status, _, body) = get(app, exts, Some(("alice", &w.alice))).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&body[0]),
        BTreeSet::from([
            "id",
            "username",
            "resource",
            "resource_type",
            "operation",
            "operation_description",
            "operation_result",
            "op_time"
        ])
    );
    // Newest first: the failed delete of Jan 3.
    assert_eq!(body[0]["resource"], "alpha/app:v2");
    assert_eq!(body[0]["operation_result"], false);
    assert_eq!(
        body[0]["operation_description"],
        "dave did delete on alpha/app:v2"
    );
    assert_eq!(body[1]["operation_result"], true);
    // Filters apply within the project.
    let (_, total, body) = get(
        app,
        "/projects/alpha/auditlog-exts?q=operation%3Dpull",
        Some(("alice", &w.alice)),
    )
    .await;
    assert_eq!(total, Some(1));
    assert_eq!(
        resources(&body),
        BTreeSet::from(["alpha/app:v1".to_owned()])
    );
    let admin_pw = app.admin_password.clone();
    let (status, total, _) = get(app, logs, Some(("admin", &admin_pw))).await;
    assert_eq!((status.as_u16(), total), (200, Some(3)));
    let resp = app
        .as_admin(app.client.get(app.url("/projects/alpha/logs?q=nope%3D1")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "BAD_REQUEST").await;

    // A developer sees the project but not its log; others not even the project.
    for path in [logs, exts] {
        let resp = app
            .as_basic(app.client.get(app.url(path)), "dave", &w.dave)
            .send()
            .await
            .unwrap();
        expect_error(resp, 403, "FORBIDDEN").await;
        for (who, pw) in [("carol", &w.carol), ("bob", &w.bob)] {
            let resp = app
                .as_basic(app.client.get(app.url(path)), who, pw)
                .send()
                .await
                .unwrap();
            expect_error(resp, 404, "NOT_FOUND").await;
        }
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        expect_error(resp, 404, "NOT_FOUND").await;
    }
    // A public project is visible to everyone, its log is not.
    let resp = app
        .client
        .get(app.url("/projects/library/logs"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "UNAUTHORIZED").await;
    let resp = app
        .as_basic(
            app.client.get(app.url("/projects/library/auditlog-exts")),
            "carol",
            &w.carol,
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "FORBIDDEN").await;
    let resp = app
        .as_admin(app.client.get(app.url("/projects/no-such-project/logs")))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "NOT_FOUND").await;

    // The path names a project by name even when the name is a number that
    // is also another project's id (Harbor's rule for these endpoints).
    let numeric = project(app, &w.alpha.id.to_string(), false).await;
    entry(
        app,
        Some(&numeric),
        "admin",
        "create",
        "artifact",
        "numbered/x:1",
        true,
    )
    .await;
    let (status, total, body) = get(
        app,
        &format!("/projects/{}/logs", w.alpha.id),
        Some(("admin", &admin_pw)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(total, Some(1));
    assert_eq!(
        resources(&body),
        BTreeSet::from(["numbered/x:1".to_owned()])
    );
}
