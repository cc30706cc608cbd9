//! `/projects/{p}/immutabletagrules` through the real HTTP API: the rule's
//! life, what is refused and why, and who may do what (compared with
//! Harbor's matrix through `rbac::allowed`).

use reqwest::Method;
use serde_json::{Value, json};
use wharf_projects::{Role, allowed};

use crate::api_support::{ApiApp, expect_error, id_from_location, json_body, location};

fn rule(repo: &str, tag: &str) -> Value {
    json!({
        "action": "immutable",
        "template": "immutable_template",
        "priority": 0,
        "disabled": false,
        "params": {},
        "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": tag}],
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": repo}]},
    })
}

async fn create(app: &ApiApp, project: &str, body: &Value) -> reqwest::Response {
    app.as_admin(
        app.client
            .post(app.url(&format!("/projects/{project}/immutabletagrules"))),
    )
    .json(body)
    .send()
    .await
    .unwrap()
}

async fn list(app: &ApiApp, project: &str, query: &str) -> reqwest::Response {
    app.as_admin(
        app.client
            .get(app.url(&format!("/projects/{project}/immutabletagrules{query}"))),
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rule_is_created_listed_changed_and_deleted() {
    let app = ApiApp::spawn().await;
    let team = app.create_project("team", false).await;

    let resp = create(&app, "team", &rule("app/**", "v*")).await;
    assert_eq!(resp.status(), 201);
    let loc = location(&resp);
    assert!(
        loc.starts_with("/api/v2.0/projects/team/immutabletagrules/"),
        "{loc}"
    );
    let id = id_from_location(&loc);
    let audit = app.last_audit("immutable_tag_rule").await.expect("audited");
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.project_id
        ),
        ("admin", "create", Some(team))
    );
    assert!(
        audit.operation_description.contains("tags matching v*"),
        "{}",
        audit.operation_description
    );

    let resp = list(&app, &team.to_string(), "").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "1");
    let mut expected = rule("app/**", "v*");
    expected["id"] = json!(id);
    assert_eq!(json_body(resp).await, json!([expected]));

    // Disable it and change its pattern in one update.
    let mut changed = rule("**", "release-*");
    changed["id"] = json!(id);
    changed["disabled"] = json!(true);
    changed["priority"] = json!(3);
    let resp = app
        .as_admin(
            app.client
                .put(app.url(&format!("/projects/team/immutabletagrules/{id}"))),
        )
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        json_body(list(&app, "team", "").await).await,
        json!([changed])
    );
    assert_eq!(
        json_body(list(&app, "team", "?q=disabled=false").await).await,
        json!([])
    );
    assert_eq!(
        app.last_audit("immutable_tag_rule")
            .await
            .unwrap()
            .operation,
        "update"
    );

    // A second rule; sorting and paging.
    let second = id_from_location(&location(&create(&app, "team", &rule("web", "**")).await));
    let ids: Vec<i64> = json_body(list(&app, "team", "?sort=-id").await)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [second, id]);
    let resp = list(&app, "team", "?page=2&page_size=1").await;
    assert_eq!(resp.headers()["x-total-count"], "2");
    assert_eq!(json_body(resp).await[0]["id"], second);

    let delete = |rule_id: i64, project: &'static str| {
        app.as_admin(
            app.client
                .delete(app.url(&format!("/projects/{project}/immutabletagrules/{rule_id}"))),
        )
        .send()
    };
    // A rule is reached only through its own project.
    app.create_project("ops", false).await;
    expect_error(delete(id, "ops").await.unwrap(), 404, "NOT_FOUND").await;
    assert_eq!(delete(id, "team").await.unwrap().status(), 200);
    assert_eq!(
        app.last_audit("immutable_tag_rule")
            .await
            .unwrap()
            .operation,
        "delete"
    );
    expect_error(delete(id, "team").await.unwrap(), 404, "NOT_FOUND").await;
    let left = json_body(list(&app, "team", "").await).await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    expect_error(list(&app, "nothere", "").await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn bad_rules_are_refused_with_the_reason() {
    let app = ApiApp::spawn().await;
    app.create_project("team", false).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut body = rule("**", "**");
        f(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|b| b["action"] = json!("retain")),
            "action must be \"immutable\"",
        ),
        (with(&|b| b["action"] = json!("")), "action is required"),
        (
            with(&|b| b["template"] = json!("latestPushedK")),
            "template must be",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("template");
            }),
            "template is required",
        ),
        (
            with(&|b| b["tag_selectors"] = json!([])),
            "needs one tag selector",
        ),
        (
            with(&|b| {
                b["tag_selectors"] = json!([
                    {"kind": "doublestar", "decoration": "matches", "pattern": "a"},
                    {"kind": "doublestar", "decoration": "matches", "pattern": "b"}
                ])
            }),
            "exactly one tag selector",
        ),
        (
            with(&|b| b["tag_selectors"][0]["kind"] = json!("regex")),
            "kind must be \"doublestar\"",
        ),
        (
            with(&|b| b["tag_selectors"][0]["decoration"] = json!("sometimes")),
            "decoration",
        ),
        (
            with(&|b| b["tag_selectors"][0]["pattern"] = json!("")),
            "pattern is required",
        ),
        (
            with(&|b| b["scope_selectors"]["repository"][0]["pattern"] = json!("{a,b")),
            "repository selector",
        ),
        (
            with(&|b| b["scope_selectors"] = json!({})),
            "one repository selector",
        ),
        (
            with(&|b| b["scope_selectors"]["namespace"] = json!([])),
            "unknown scope selector \"namespace\"",
        ),
    ];
    for (body, reason) in cases {
        let message = expect_error(create(&app, "team", &body).await, 400, "BAD_REQUEST").await;
        assert!(message.contains(reason), "{body}: {message}");
    }
    let bad_json = app
        .as_admin(app.client.post(app.url("/projects/team/immutabletagrules")))
        .header("content-type", "application/json")
        .body("{\"tag_selectors\": 5}")
        .send()
        .await
        .unwrap();
    expect_error(bad_json, 400, "BAD_REQUEST").await;

    // The same rule twice is a conflict.
    assert_eq!(create(&app, "team", &rule("a", "b")).await.status(), 201);
    let message = expect_error(create(&app, "team", &rule("a", "b")).await, 409, "CONFLICT").await;
    assert_eq!(message, "immutable rule already exists");
    // An update may not name another rule in its body, nor clash with one.
    let other = id_from_location(&location(&create(&app, "team", &rule("c", "d")).await));
    let mut body = rule("a", "b");
    body["id"] = json!(other + 100);
    let put = |body: Value| {
        app.as_admin(
            app.client
                .put(app.url(&format!("/projects/team/immutabletagrules/{other}"))),
        )
        .json(&body)
        .send()
    };
    expect_error(put(body).await.unwrap(), 400, "BAD_REQUEST").await;
    expect_error(put(rule("a", "b")).await.unwrap(), 409, "CONFLICT").await;
    expect_error(
        app.as_admin(
            app.client
                .put(app.url("/projects/team/immutabletagrules/424242")),
        )
        .json(&rule("x", "y"))
        .send()
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        list(&app, "team", "?q=priority=1").await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        list(&app, "team", "?sort=pattern").await,
        400,
        "BAD_REQUEST",
    )
    .await;
}

#[tokio::test]
async fn each_role_gets_what_harbors_matrix_gives() {
    let app = ApiApp::spawn().await;
    let public = app.create_project("open", true).await;
    let private = app.create_project("closed", false).await;
    // Roles held and Basic credentials (none: anonymous).
    type Person = (Vec<Role>, Option<(String, String)>);
    let mut people: Vec<Person> = Vec::new();
    for (i, role) in Role::ALL.into_iter().enumerate() {
        let name = format!("member{i}");
        let (id, pw) = app.create_user(&name).await;
        app.add_member(public, id, role).await;
        app.add_member(private, id, role).await;
        people.push((vec![role], Some((name, pw))));
    }
    let (_, outsider_pw) = app.create_user("outsider").await;
    people.push((vec![], Some(("outsider".into(), outsider_pw))));
    people.push((vec![], None));

    for (project, is_public) in [("open", true), ("closed", false)] {
        for (roles, who) in &people {
            // A fresh rule each round, so update and delete have a target.
            let resp = create(
                &app,
                project,
                &rule(&uuid::Uuid::new_v4().to_string(), "**"),
            )
            .await;
            let id = id_from_location(&location(&resp));
            let checks = [
                (
                    "list",
                    Method::GET,
                    format!("/projects/{project}/immutabletagrules"),
                    None,
                ),
                (
                    "create",
                    Method::POST,
                    format!("/projects/{project}/immutabletagrules"),
                    Some(rule("made-by-someone", &uuid::Uuid::new_v4().to_string())),
                ),
                (
                    "update",
                    Method::PUT,
                    format!("/projects/{project}/immutabletagrules/{id}"),
                    Some(rule("changed", &uuid::Uuid::new_v4().to_string())),
                ),
                (
                    "delete",
                    Method::DELETE,
                    format!("/projects/{project}/immutabletagrules/{id}"),
                    None,
                ),
            ];
            for (action, method, path, body) in checks {
                let expected = allowed(roles, false, is_public, "immutable-tag", action);
                let visible = allowed(roles, false, is_public, "", "read");
                let mut rb = app.client.request(method.clone(), app.url(&path));
                if let Some((name, pw)) = who {
                    rb = app.as_basic(rb, name, pw);
                }
                if let Some(body) = &body {
                    rb = rb.json(body);
                }
                let resp = rb.send().await.unwrap();
                let status = resp.status().as_u16();
                let label = format!("{roles:?} {who:?} {action} in {project}");
                if expected {
                    assert!(
                        (200..300).contains(&status),
                        "{label}: {status} {}",
                        resp.text().await.unwrap_or_default()
                    );
                } else if !visible {
                    expect_error(resp, 404, "NOT_FOUND").await;
                } else if who.is_none() {
                    expect_error(resp, 401, "UNAUTHORIZED").await;
                } else {
                    expect_error(resp, 403, "FORBIDDEN").await;
                }
            }
        }
    }
    // The matrix itself: only project admins and maintainers manage rules.
    for role in Role::ALL {
        assert_eq!(
            allowed(&[role], false, false, "immutable-tag", "create"),
            matches!(role, Role::ProjectAdmin | Role::Maintainer),
            "{role:?}"
        );
    }

    // A robot with the grant may list and create, one without may not.
    let (robot, secret) = app
        .robot(
            "rules",
            &[(
                "project",
                "closed",
                &[("immutable-tag", "list"), ("immutable-tag", "create")],
            )],
        )
        .await;
    let resp = app
        .as_basic(
            app.client
                .get(app.url("/projects/closed/immutabletagrules")),
            &robot,
            &secret,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app
        .as_basic(
            app.client
                .post(app.url("/projects/closed/immutabletagrules")),
            &robot,
            &secret,
        )
        .json(&rule("robot", "made"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = id_from_location(&location(&resp));
    expect_error(
        app.as_basic(
            app.client
                .delete(app.url(&format!("/projects/closed/immutabletagrules/{id}"))),
            &robot,
            &secret,
        )
        .send()
        .await
        .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
}
