//! `/labels` and the artifact label endpoints through the real HTTP API:
//! who may manage global and project labels, who may read them, attach and
//! detach rules, errors, and the audit entries of every change.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wharf_projects::Role;
use wharf_projects::labels::labels_of;

use crate::api_support::{ApiApp, expect_error, id_from_location, json_body, location, text};
use crate::seed_artifacts::artifact;

type Who<'a> = Option<(&'a str, &'a str)>;

async fn call(
    app: &ApiApp,
    method: Method,
    path: &str,
    who: Who<'_>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut rb = app.client.request(method, app.url(path));
    if let Some((name, secret)) = who {
        rb = app.as_basic(rb, name, secret);
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    rb.send().await.expect("request")
}

fn admin(app: &ApiApp) -> Who<'_> {
    Some(("admin", app.admin_password.as_str()))
}

/// Create a label as `who`; returns the id (panics unless 201).
async fn create(app: &ApiApp, who: Who<'_>, body: Value) -> i64 {
    let resp = call(app, Method::POST, "/labels", who, Some(body.clone())).await;
    let status = resp.status();
    let loc = location(&resp);
    assert_eq!(status, 201, "create {body}: {}", text(resp).await);
    assert!(loc.starts_with("/api/v2.0/labels/"), "{loc}");
    id_from_location(&loc)
}

#[tokio::test]
async fn system_admins_manage_global_labels_everyone_signed_in_reads_them() {
    let app = ApiApp::spawn().await;
    let (_, pw) = app.create_user("uma").await;
    let uma = Some(("uma", pw.as_str()));

    let id = create(
        &app,
        admin(&app),
        json!({"name": "prod", "description": "production", "color": "#FF0000", "scope": "g",
               "project_id": 42}),
    )
    .await;
    let audit = app.last_audit("label").await.expect("audit entry");
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str(),
            audit.project_id
        ),
        ("admin", "create", "prod", None)
    );
    assert!(
        audit.operation_description.contains("global label prod"),
        "{}",
        audit.operation_description
    );

    let label = json_body(call(&app, Method::GET, &format!("/labels/{id}"), uma, None).await).await;
    assert_eq!(label["id"], id);
    assert_eq!(label["name"], "prod");
    assert_eq!(label["description"], "production");
    assert_eq!(label["color"], "#FF0000");
    assert_eq!(label["scope"], "g");
    assert_eq!(
        label["project_id"], 0,
        "a global label has no project, whatever was sent"
    );
    assert_eq!(label["deleted"], false);
    assert!(label["creation_time"].is_string() && label["update_time"].is_string());

    // Reading: signed-in yes, anonymous no.
    let listed = call(&app, Method::GET, "/labels?scope=g", uma, None).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["x-total-count"], "1");
    let listed = json_body(listed).await;
    assert_eq!(listed, json!([label]));
    let unscoped = json_body(call(&app, Method::GET, "/labels", uma, None).await).await;
    assert_eq!(
        unscoped, listed,
        "no scope and no project_id lists global labels"
    );
    expect_error(
        call(&app, Method::GET, "/labels?scope=g", None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(
        call(&app, Method::GET, &format!("/labels/{id}"), None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;

    // Changing: only system administrators.
    let body = json!({"name": "x", "scope": "g"});
    expect_error(
        call(&app, Method::POST, "/labels", uma, Some(body.clone())).await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        call(&app, Method::POST, "/labels", None, Some(body)).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let change = json!({"name": "production", "description": "", "color": "#00FF00"});
    expect_error(
        call(
            &app,
            Method::PUT,
            &format!("/labels/{id}"),
            uma,
            Some(change.clone()),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        call(&app, Method::DELETE, &format!("/labels/{id}"), uma, None).await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        call(&app, Method::DELETE, &format!("/labels/{id}"), None, None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;

    let resp = call(
        &app,
        Method::PUT,
        &format!("/labels/{id}"),
        admin(&app),
        Some(change),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    let updated =
        json_body(call(&app, Method::GET, &format!("/labels/{id}"), uma, None).await).await;
    assert_eq!(
        (
            updated["name"].as_str(),
            updated["description"].as_str(),
            updated["color"].as_str()
        ),
        (Some("production"), Some(""), Some("#00FF00"))
    );
    assert_eq!(updated["scope"], "g");
    assert_eq!(updated["creation_time"], label["creation_time"]);
    let audit = app.last_audit("label").await.unwrap();
    assert_eq!(
        (audit.operation.as_str(), audit.resource.as_str()),
        ("update", "production")
    );
    assert!(
        audit.operation_description.contains("renamed from prod"),
        "{}",
        audit.operation_description
    );

    let resp = call(
        &app,
        Method::DELETE,
        &format!("/labels/{id}"),
        admin(&app),
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let audit = app.last_audit("label").await.unwrap();
    assert_eq!(
        (audit.operation.as_str(), audit.resource.as_str()),
        ("delete", "production")
    );
    expect_error(
        call(&app, Method::GET, &format!("/labels/{id}"), uma, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("/labels/{id}"),
            admin(&app),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::PUT,
            &format!("/labels/{id}"),
            admin(&app),
            Some(json!({"name": "y"})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn robots_with_system_label_grants_manage_global_labels() {
    let app = ApiApp::spawn().await;
    let (name, secret) = app
        .robot(
            "labeller",
            &[("system", "/", &[("label", "create"), ("label", "delete")])],
        )
        .await;
    let robot = Some((name.as_str(), secret.as_str()));
    let id = create(&app, robot, json!({"name": "ci", "scope": "g"})).await;
    assert_eq!(app.last_audit("label").await.unwrap().username, name);
    expect_error(
        call(
            &app,
            Method::PUT,
            &format!("/labels/{id}"),
            robot,
            Some(json!({"name": "ci2"})),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
    let got = call(&app, Method::GET, &format!("/labels/{id}"), robot, None).await;
    assert_eq!(got.status(), 200, "signed-in robots read global labels");
    assert_eq!(
        call(&app, Method::DELETE, &format!("/labels/{id}"), robot, None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn bad_label_requests_are_refused_with_the_reason() {
    let app = ApiApp::spawn().await;
    let admin = admin(&app);
    let lib = app.library_id;
    create(&app, admin, json!({"name": "dup", "scope": "g"})).await;
    let cases = [
        (json!({"name": "", "scope": "g"}), 400, "BAD_REQUEST"),
        (json!({"scope": "g"}), 400, "BAD_REQUEST"),
        (
            json!({"name": "x".repeat(129), "scope": "g"}),
            400,
            "BAD_REQUEST",
        ),
        (
            json!({"name": "c", "scope": "g", "color": "#".repeat(17)}),
            400,
            "BAD_REQUEST",
        ),
        (json!({"name": "s", "scope": "x"}), 400, "BAD_REQUEST"),
        (json!({"name": "s"}), 400, "BAD_REQUEST"),
        (json!({"name": "s", "scope": "p"}), 400, "BAD_REQUEST"),
        (
            json!({"name": "s", "scope": "p", "project_id": 0}),
            400,
            "BAD_REQUEST",
        ),
        (
            json!({"name": "s", "scope": "p", "project_id": 999_999}),
            404,
            "NOT_FOUND",
        ),
        (json!({"name": "dup", "scope": "g"}), 409, "CONFLICT"),
        (json!({"name": 5, "scope": "g"}), 400, "BAD_REQUEST"),
    ];
    for (body, status, code) in cases {
        let message = expect_error(
            call(&app, Method::POST, "/labels", admin, Some(body.clone())).await,
            status,
            code,
        )
        .await;
        assert!(!message.is_empty(), "{body}");
    }
    let message = expect_error(
        call(
            &app,
            Method::POST,
            "/labels",
            admin,
            Some(json!({"name": "dup", "scope": "g"})),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    assert!(message.contains("dup"), "{message}");
    // The same name is free in a project.
    create(
        &app,
        admin,
        json!({"name": "dup", "scope": "p", "project_id": lib}),
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            "/labels",
            admin,
            Some(json!({"name": "dup", "scope": "p", "project_id": lib})),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;

    for path in [
        "/labels?scope=q",
        "/labels?scope=p",
        "/labels?q=color=red",
        "/labels?sort=colour",
        "/labels?page_size=101",
        "/labels?q=id=abc",
        "/labels?project_id=abc",
    ] {
        expect_error(
            call(&app, Method::GET, path, admin, None).await,
            400,
            "BAD_REQUEST",
        )
        .await;
    }
    expect_error(
        call(&app, Method::GET, "/labels/abc", admin, None).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::GET,
            "/labels?scope=p&project_id=999999",
            admin,
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    // Renaming onto a taken name, and to nothing.
    let other = create(&app, admin, json!({"name": "other", "scope": "g"})).await;
    expect_error(
        call(
            &app,
            Method::PUT,
            &format!("/labels/{other}"),
            admin,
            Some(json!({"name": "dup"})),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::PUT,
            &format!("/labels/{other}"),
            admin,
            Some(json!({"description": "no name"})),
        )
        .await,
        400,
        "BAD_REQUEST",
    )
    .await;
}

#[tokio::test]
async fn project_labels_follow_the_project_roles() {
    let app = ApiApp::spawn().await;
    let private = app.create_project("secret", false).await;
    let public = app.create_project("open", true).await;
    let mut people = Vec::new();
    for (name, role) in [
        ("pa", Some(Role::ProjectAdmin)),
        ("ma", Some(Role::Maintainer)),
        ("de", Some(Role::Developer)),
        ("gu", Some(Role::Guest)),
        ("lg", Some(Role::LimitedGuest)),
        ("no", None),
    ] {
        let (id, pw) = app.create_user(name).await;
        if let Some(role) = role {
            app.add_member(private, id, role).await;
            app.add_member(public, id, role).await;
        }
        people.push((name, role, pw));
    }
    let seed = create(
        &app,
        admin(&app),
        json!({"name": "seed", "scope": "p", "project_id": private}),
    )
    .await;
    let open_seed = create(
        &app,
        admin(&app),
        json!({"name": "seed", "scope": "p", "project_id": public}),
    )
    .await;

    for (name, role, pw) in &people {
        let who = Some((*name, pw.as_str()));
        let manages = matches!(role, Some(Role::ProjectAdmin | Role::Maintainer));
        let reads = matches!(
            role,
            Some(Role::ProjectAdmin | Role::Maintainer | Role::Developer | Role::Guest)
        );

        // Create.
        let body = json!({"name": format!("by-{name}"), "scope": "p", "project_id": private});
        let resp = call(&app, Method::POST, "/labels", who, Some(body)).await;
        let expected = match role {
            None => StatusCode::NOT_FOUND,
            Some(_) if manages => StatusCode::CREATED,
            Some(_) => StatusCode::FORBIDDEN,
        };
        assert_eq!(
            resp.status(),
            expected,
            "{name} creates: {}",
            text(resp).await
        );
        if manages {
            let audit = app.last_audit("label").await.unwrap();
            assert_eq!(
                (audit.username.as_str(), audit.project_id),
                (*name, Some(private))
            );
            assert!(
                audit.operation_description.contains("project secret"),
                "{}",
                audit.operation_description
            );
        }

        // Read and list.
        let expected = match role {
            None => StatusCode::NOT_FOUND,
            Some(_) if reads => StatusCode::OK,
            Some(_) => StatusCode::FORBIDDEN,
        };
        let got = call(&app, Method::GET, &format!("/labels/{seed}"), who, None).await;
        assert_eq!(got.status(), expected, "{name} reads");
        let listed = call(
            &app,
            Method::GET,
            &format!("/labels?scope=p&project_id={private}"),
            who,
            None,
        )
        .await;
        assert_eq!(listed.status(), expected, "{name} lists");
        // On the public project everyone reads, like pulling.
        let got = call(
            &app,
            Method::GET,
            &format!("/labels/{open_seed}"),
            who,
            None,
        )
        .await;
        assert_eq!(
            got.status(),
            StatusCode::OK,
            "{name} reads on the public project"
        );

        // Update and delete a label of their own making, or the seed.
        let target = if manages {
            create(
                &app,
                admin(&app),
                json!({"name": format!("tmp-{name}"), "scope": "p", "project_id": private}),
            )
            .await
        } else {
            seed
        };
        let expected = match role {
            None => StatusCode::NOT_FOUND,
            Some(_) if manages => StatusCode::OK,
            Some(_) => StatusCode::FORBIDDEN,
        };
        let resp = call(
            &app,
            Method::PUT,
            &format!("/labels/{target}"),
            who,
            Some(json!({"name": format!("re-{name}")})),
        )
        .await;
        assert_eq!(resp.status(), expected, "{name} updates");
        let resp = call(
            &app,
            Method::DELETE,
            &format!("/labels/{target}"),
            who,
            None,
        )
        .await;
        assert_eq!(resp.status(), expected, "{name} deletes");
    }

    // Anonymous visitors read public project labels, nothing private.
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("/labels/{open_seed}"),
            None,
            None
        )
        .await
        .status(),
        200
    );
    let listed = call(
        &app,
        Method::GET,
        &format!("/labels?project_id={public}"),
        None,
        None,
    )
    .await;
    assert_eq!(listed.status(), 200);
    assert_eq!(json_body(listed).await[0]["id"], open_seed);
    expect_error(
        call(&app, Method::GET, &format!("/labels/{seed}"), None, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::GET,
            &format!("/labels?scope=p&project_id={private}"),
            None,
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            "/labels",
            None,
            Some(json!({"name": "anon", "scope": "p", "project_id": public})),
        )
        .await,
        401,
        "UNAUTHORIZED",
    )
    .await;

    // Project listings show only that project's labels.
    let listed = json_body(
        call(
            &app,
            Method::GET,
            &format!("/labels?scope=p&project_id={private}&sort=name"),
            admin(&app),
            None,
        )
        .await,
    )
    .await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["by-ma", "by-pa", "seed"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["scope"] == "p" && l["project_id"] == private)
    );
}

#[tokio::test]
async fn label_listing_filters_sorts_and_pages() {
    let app = ApiApp::spawn().await;
    let admin = admin(&app);
    let mut ids = Vec::new();
    for name in ["delta", "alpha", "charlie", "bravo", "alpha-two"] {
        ids.push(create(&app, admin, json!({"name": name, "scope": "g"})).await);
    }
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = json_body(call(&app, Method::GET, "/labels?scope=g", admin, None).await).await;
    assert_eq!(
        names(&all),
        ["alpha", "alpha-two", "bravo", "charlie", "delta"]
    );
    let fuzzy =
        json_body(call(&app, Method::GET, "/labels?scope=g&name=ALPHA", admin, None).await).await;
    assert_eq!(names(&fuzzy), ["alpha", "alpha-two"]);
    let exact = json_body(
        call(
            &app,
            Method::GET,
            "/labels?scope=g&q=name%3Dalpha",
            admin,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(names(&exact), ["alpha"]);
    let q_fuzzy = json_body(
        call(
            &app,
            Method::GET,
            "/labels?scope=g&q=name%3D~rav",
            admin,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(names(&q_fuzzy), ["bravo"]);
    let by_ids = json_body(
        call(
            &app,
            Method::GET,
            &format!("/labels?q=id%3D%7B{}%20{}%7D", ids[0], ids[2]),
            admin,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(names(&by_ids), ["charlie", "delta"]);
    let sorted = json_body(
        call(
            &app,
            Method::GET,
            "/labels?scope=g&sort=-creation_time",
            admin,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        names(&sorted),
        ["alpha-two", "bravo", "charlie", "alpha", "delta"]
    );

    let page = call(
        &app,
        Method::GET,
        "/labels?scope=g&page=2&page_size=2",
        admin,
        None,
    )
    .await;
    assert_eq!(page.headers()["x-total-count"], "5");
    let link = page.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("rel=\"prev\"") && link.contains("rel=\"next\""),
        "{link}"
    );
    assert!(link.contains("scope=g"), "{link}");
    assert_eq!(names(&json_body(page).await), ["bravo", "charlie"]);
}

#[tokio::test]
async fn labels_attach_to_artifacts_by_tag_or_digest() {
    let app = ApiApp::spawn().await;
    let admin = admin(&app);
    let team = app.create_project("team", false).await;
    let other = app.create_project("other", false).await;
    let image = artifact(app.pool(), "team/web", &["v1"], &[]).await;
    let nested = artifact(app.pool(), "team/tools/cli", &["stable"], &[]).await;
    let global = create(&app, admin, json!({"name": "approved", "scope": "g"})).await;
    let own = create(
        &app,
        admin,
        json!({"name": "team-only", "scope": "p", "project_id": team}),
    )
    .await;
    let foreign = create(
        &app,
        admin,
        json!({"name": "other-only", "scope": "p", "project_id": other}),
    )
    .await;

    let labels_url = |repo: &str, reference: &str| {
        format!("/projects/team/repositories/{repo}/artifacts/{reference}/labels")
    };
    let attached = |id: i64| {
        let pool = app.pool().clone();
        async move {
            labels_of(&pool, &[id])
                .await
                .unwrap()
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.id)
                .collect::<Vec<_>>()
        }
    };

    // By tag, then the same label again.
    let resp = call(
        &app,
        Method::POST,
        &labels_url("web", "v1"),
        admin,
        Some(json!({"id": global})),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    let audit = app.last_audit("artifact-label").await.expect("audit");
    let resource = format!("team/web@{}", image.digest);
    assert_eq!(
        (
            audit.operation.as_str(),
            audit.resource.as_str(),
            audit.project_id
        ),
        ("create", resource.as_str(), Some(team))
    );
    assert!(
        audit.operation_description.contains("approved"),
        "{}",
        audit.operation_description
    );
    expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("web", "v1"),
            admin,
            Some(json!({"id": global})),
        )
        .await,
        409,
        "CONFLICT",
    )
    .await;
    // By digest, a project label of this project.
    let resp = call(
        &app,
        Method::POST,
        &labels_url("web", &image.digest),
        admin,
        Some(json!({"id": own, "name": "ignored"})),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    assert_eq!(attached(image.id).await, vec![global, own]);

    // Another project's label is not found here.
    let message = expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("web", "v1"),
            admin,
            Some(json!({"id": foreign})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert!(message.contains(&foreign.to_string()), "{message}");
    expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("web", "v1"),
            admin,
            Some(json!({"id": 999_999})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("web", "v1"),
            admin,
            Some(json!({})),
        )
        .await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("web", "v1"),
            admin,
            Some(json!({"id": "x"})),
        )
        .await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("web", "v9"),
            admin,
            Some(json!({"id": global})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("nothing", "v1"),
            admin,
            Some(json!({"id": global})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            "/projects/nope/repositories/web/artifacts/v1/labels",
            admin,
            Some(json!({"id": global})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    // Malformed references and repository names.
    for url in [labels_url("web", "bad%20tag"), labels_url("Web", "v1")] {
        expect_error(
            call(&app, Method::POST, &url, admin, Some(json!({"id": global}))).await,
            400,
            "BAD_REQUEST",
        )
        .await;
    }
    // An artifact of another repository is not reachable through this one.
    expect_error(
        call(
            &app,
            Method::POST,
            &labels_url("web", &nested.digest),
            admin,
            Some(json!({"id": global})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    // Nested repositories: '/' encoded twice, as Harbor clients send it, or once.
    for (encoded, label) in [("tools%252Fcli", global), ("tools%2Fcli", own)] {
        let resp = call(
            &app,
            Method::POST,
            &labels_url(encoded, "stable"),
            admin,
            Some(json!({"id": label})),
        )
        .await;
        assert_eq!(resp.status(), 200, "{encoded}: {}", text(resp).await);
    }
    assert_eq!(attached(nested.id).await, vec![global, own]);

    // Detach.
    let resp = call(
        &app,
        Method::DELETE,
        &format!("{}/{own}", labels_url("tools%252Fcli", "stable")),
        admin,
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let audit = app.last_audit("artifact-label").await.unwrap();
    assert_eq!(
        (audit.operation.as_str(), audit.resource.as_str()),
        (
            "delete",
            format!("team/tools/cli@{}", nested.digest).as_str()
        )
    );
    assert_eq!(attached(nested.id).await, vec![global]);
    expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("{}/{own}", labels_url("tools%252Fcli", "stable")),
            admin,
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("{}/999999", labels_url("web", "v1")),
            admin,
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("{}/{global}", labels_url("web", "v9")),
            admin,
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("{}/abc", labels_url("web", "v1")),
            admin,
            None,
        )
        .await,
        400,
        "BAD_REQUEST",
    )
    .await;

    // Deleting a label detaches it everywhere.
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/labels/{global}"),
            admin,
            None
        )
        .await
        .status(),
        200
    );
    assert_eq!(attached(image.id).await, vec![own]);
    assert!(attached(nested.id).await.is_empty());
    let audit = app.last_audit("label").await.unwrap();
    assert!(
        audit
            .operation_description
            .contains("detached from 2 artifact(s)"),
        "{}",
        audit.operation_description
    );
}

#[tokio::test]
async fn attaching_needs_artifact_label_permissions() {
    let app = ApiApp::spawn().await;
    let private = app.create_project("crew", false).await;
    let public = app.create_project("open", true).await;
    artifact(app.pool(), "crew/app", &["v1"], &[]).await;
    artifact(app.pool(), "open/app", &["v1"], &[]).await;
    let global = create(&app, admin(&app), json!({"name": "ok", "scope": "g"})).await;

    for (name, role) in [
        ("pa", Some(Role::ProjectAdmin)),
        ("ma", Some(Role::Maintainer)),
        ("de", Some(Role::Developer)),
        ("gu", Some(Role::Guest)),
        ("lg", Some(Role::LimitedGuest)),
        ("no", None),
    ] {
        let (id, pw) = app.create_user(name).await;
        if let Some(role) = role {
            app.add_member(private, id, role).await;
        }
        let who = Some((name, pw.as_str()));
        let may = matches!(
            role,
            Some(Role::ProjectAdmin | Role::Maintainer | Role::Developer)
        );
        let expected = match role {
            None => StatusCode::NOT_FOUND,
            Some(_) if may => StatusCode::OK,
            Some(_) => StatusCode::FORBIDDEN,
        };
        let url = "/projects/crew/repositories/app/artifacts/v1/labels";
        let resp = call(&app, Method::POST, url, who, Some(json!({"id": global}))).await;
        assert_eq!(
            resp.status(),
            expected,
            "{name} attaches: {}",
            text(resp).await
        );
        let resp = call(&app, Method::DELETE, &format!("{url}/{global}"), who, None).await;
        assert_eq!(resp.status(), expected, "{name} detaches");
        // A visitor of a public project sees it but may not label.
        let url = "/projects/open/repositories/app/artifacts/v1/labels";
        let resp = call(&app, Method::POST, url, who, Some(json!({"id": global}))).await;
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{name} on the public project"
        );
    }
    let _ = public;
    let url = "/projects/open/repositories/app/artifacts/v1/labels";
    expect_error(
        call(&app, Method::POST, url, None, Some(json!({"id": global}))).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(
        call(
            &app,
            Method::POST,
            "/projects/crew/repositories/app/artifacts/v1/labels",
            None,
            Some(json!({"id": global})),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;

    // A robot granted artifact-label in the project may label there.
    let (robot, secret) = app
        .robot(
            "tagger",
            &[("project", "crew", &[("artifact-label", "create")])],
        )
        .await;
    let resp = call(
        &app,
        Method::POST,
        "/projects/crew/repositories/app/artifacts/v1/labels",
        Some((robot.as_str(), secret.as_str())),
        Some(json!({"id": global})),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", text(resp).await);
    assert_eq!(
        app.last_audit("artifact-label").await.unwrap().username,
        robot
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_label_operations() {
    let doc = serde_json::to_value(wharf_projects::http::openapi()).unwrap();
    let paths = &doc["paths"];
    for (path, method, id) in [
        ("/labels", "get", "ListLabels"),
        ("/labels", "post", "CreateLabel"),
        ("/labels/{label_id}", "get", "GetLabelByID"),
        ("/labels/{label_id}", "put", "UpdateLabel"),
        ("/labels/{label_id}", "delete", "DeleteLabel"),
        (
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels",
            "post",
            "addLabel",
        ),
        (
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/labels/{label_id}",
            "delete",
            "removeLabel",
        ),
        ("/search", "get", "search"),
        ("/statistics", "get", "getStatistic"),
    ] {
        assert_eq!(paths[path][method]["operationId"], id, "{method} {path}");
    }
    for schema in ["Label", "Search", "SearchRepository", "Statistic"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }
}
