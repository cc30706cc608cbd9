//! `/repositories` and `/projects/{p}/repositories` over a real registry:
//! content pushed through `/v2`, read and changed through the REST API.

use serde_json::{Value, json};
use wharf_projects::Role;

use crate::api_support::{ApiApp, expect_error, json_body};
use crate::artifact_support::{pull, push_image};

async fn get(app: &ApiApp, path: &str, who: Option<(&str, &str)>) -> reqwest::Response {
    let rb = app.client.get(app.url(path));
    let rb = match who {
        Some((name, secret)) => app.as_basic(rb, name, secret),
        None => rb,
    };
    rb.send().await.unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn repositories_are_listed_read_described_and_deleted() {
    let app = ApiApp::spawn_with_registry().await;
    let app_image = push_image(&app, "library/app", Some("v1"), "amd64").await;
    push_image(&app, "library/app", Some("v2"), "arm64").await;
    push_image(&app, "library/team/tool", Some("latest"), "amd64").await;

    let resp = app
        .as_admin(
            app.client
                .get(app.url("/projects/library/repositories?sort=name")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "2");
    let list = json_body(resp).await;
    assert_eq!(names(&list), ["library/app", "library/team/tool"]);
    let first = &list[0];
    assert_eq!(first["project_id"], app.library_id);
    assert_eq!(first["artifact_count"], 2);
    assert_eq!(first["pull_count"], 0);
    assert_eq!(first["description"], "");
    assert!(first["creation_time"].is_string() && first["update_time"].is_string());

    let fuzzy = json_body(
        app.as_admin(
            app.client
                .get(app.url("/projects/library/repositories?q=name%3D~tool")),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(names(&fuzzy), ["library/team/tool"]);
    let sorted = json_body(
        app.as_admin(
            app.client
                .get(app.url("/projects/library/repositories?sort=-name&page_size=1")),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(names(&sorted), ["library/team/tool"]);
    // Orders on stored columns page the rows before counting artifacts;
    // adding a computed key last (it never decides, the first keys are
    // unique) takes the count-every-row path. Both must give the same pages.
    for (stored, computed) in [
        ("name", "name,artifact_count"),
        ("-creation_time", "-creation_time,-update_time"),
        ("-id", "-id,artifact_count"),
    ] {
        for page in 1..=3 {
            let mut pages = Vec::new();
            for sort in [stored, computed] {
                let path =
                    format!("/projects/library/repositories?sort={sort}&page_size=1&page={page}");
                pages.push(
                    json_body(get(&app, &path, Some(("admin", &app.admin_password))).await).await,
                );
            }
            assert_eq!(pages[0], pages[1], "sort={stored} page={page}");
            assert_eq!(pages[0].as_array().unwrap().len(), usize::from(page < 3));
        }
    }
    expect_error(
        app.as_admin(
            app.client
                .get(app.url("/projects/library/repositories?sort=colour")),
        )
        .send()
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;

    // Names with a slash are encoded twice; once is accepted too.
    for encoded in ["team%252Ftool", "team%2Ftool"] {
        let resp = app
            .as_admin(
                app.client
                    .get(app.url(&format!("/projects/library/repositories/{encoded}"))),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{encoded}");
        assert_eq!(json_body(resp).await["name"], "library/team/tool");
    }
    expect_error(
        app.as_admin(
            app.client
                .get(app.url("/projects/library/repositories/Tool")),
        )
        .send()
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        app.as_admin(
            app.client
                .get(app.url("/projects/library/repositories/nothing")),
        )
        .send()
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.as_admin(
            app.client
                .get(app.url("/projects/nowhere/repositories/app")),
        )
        .send()
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;

    let resp = app
        .as_admin(
            app.client
                .put(app.url("/projects/library/repositories/app")),
        )
        .json(&json!({"description": "the application"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let repo = json_body(
        app.as_admin(
            app.client
                .get(app.url("/projects/library/repositories/app")),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(repo["description"], "the application");
    let audit = app.last_audit("repository").await.expect("audited");
    assert_eq!(
        (audit.operation.as_str(), audit.resource.as_str()),
        ("update", "library/app")
    );

    let resp = app
        .as_admin(
            app.client
                .delete(app.url("/projects/library/repositories/app")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    expect_error(
        app.as_admin(
            app.client
                .get(app.url("/projects/library/repositories/app")),
        )
        .send()
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(pull(&app, "library/app", "v1").await.status(), 404);
    assert_eq!(
        pull(&app, "library/app", &app_image.manifest.digest)
            .await
            .status(),
        404
    );
    let entries = app.audit_entries().await;
    assert!(
        entries.iter().any(|e| e.resource_type == "artifact"
            && e.operation == "delete"
            && e.resource == format!("library/app@{}", app_image.manifest.digest)),
        "each artifact delete is audited"
    );
    assert!(entries.iter().any(|e| e.resource_type == "repository"
        && e.operation == "delete"
        && e.resource == "library/app"));
    let left = json_body(
        app.as_admin(app.client.get(app.url("/projects/library/repositories")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(names(&left), ["library/team/tool"]);
}

#[tokio::test]
async fn all_repositories_are_those_the_caller_may_list() {
    let app = ApiApp::spawn_with_registry().await;
    let secret_id = app.create_project("secret", false).await;
    push_image(&app, "library/open", Some("v1"), "amd64").await;
    push_image(&app, "secret/hidden", Some("v1"), "amd64").await;
    let (member_id, member_pw) = app.create_user("member").await;
    app.add_member(secret_id, member_id, Role::LimitedGuest)
        .await;
    let (_, outsider_pw) = app.create_user("outsider").await;

    let everyone = |list: Value| names(&list);
    let admin = everyone(
        json_body(
            get(
                &app,
                "/repositories?sort=name",
                Some(("admin", &app.admin_password)),
            )
            .await,
        )
        .await,
    );
    assert_eq!(admin, ["library/open", "secret/hidden"]);
    let member = everyone(
        json_body(
            get(
                &app,
                "/repositories?sort=name",
                Some(("member", &member_pw)),
            )
            .await,
        )
        .await,
    );
    assert_eq!(member, ["library/open", "secret/hidden"]);
    let outsider = everyone(
        json_body(get(&app, "/repositories", Some(("outsider", &outsider_pw))).await).await,
    );
    assert_eq!(outsider, ["library/open"]);
    let anonymous = everyone(json_body(get(&app, "/repositories", None).await).await);
    assert_eq!(anonymous, ["library/open"]);
    let fuzzy = everyone(
        json_body(
            get(
                &app,
                "/repositories?q=name%3D~hid",
                Some(("admin", &app.admin_password)),
            )
            .await,
        )
        .await,
    );
    assert_eq!(fuzzy, ["secret/hidden"]);

    let (robot, robot_secret) = app
        .robot(
            "lister",
            &[("project", "secret", &[("repository", "list")])],
        )
        .await;
    let robot_view = everyone(
        json_body(
            get(
                &app,
                "/repositories?sort=name",
                Some((&robot, &robot_secret)),
            )
            .await,
        )
        .await,
    );
    assert_eq!(robot_view, ["library/open", "secret/hidden"]);
}

#[tokio::test]
async fn repository_permissions_follow_the_role_matrix() {
    let app = ApiApp::spawn_with_registry().await;
    let project = app.create_project("team", false).await;
    push_image(&app, "team/app", Some("v1"), "amd64").await;
    push_image(&app, "library/pub", Some("v1"), "amd64").await;
    let mut users = Vec::new();
    for (name, role) in [
        ("guest", Role::Guest),
        ("dev", Role::Developer),
        ("keeper", Role::Maintainer),
    ] {
        let (id, pw) = app.create_user(name).await;
        app.add_member(project, id, role).await;
        users.push((name, pw));
    }
    let (_, outsider_pw) = app.create_user("outsider").await;
    let pw = |name: &str| users.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let put = |who: &str, secret: String| {
        let rb = app
            .client
            .put(app.url("/projects/team/repositories/app"))
            .json(&json!({"description": who}));
        app.as_basic(rb, who, &secret).send()
    };
    let delete = |who: &str, secret: String| {
        app.as_basic(
            app.client
                .delete(app.url("/projects/team/repositories/app")),
            who,
            &secret,
        )
        .send()
    };

    // Everyone in the project reads; outsiders and anonymous callers do
    // not learn the private project exists.
    for name in ["guest", "dev", "keeper"] {
        assert_eq!(
            get(&app, "/projects/team/repositories", Some((name, &pw(name))))
                .await
                .status(),
            200
        );
        assert_eq!(
            get(
                &app,
                "/projects/team/repositories/app",
                Some((name, &pw(name)))
            )
            .await
            .status(),
            200
        );
    }
    expect_error(
        get(
            &app,
            "/projects/team/repositories",
            Some(("outsider", &outsider_pw)),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        get(&app, "/projects/team/repositories/app", None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // A public project lists its repositories to anyone; reading one needs
    // repository:read, which anonymous callers lack (Harbor's matrix).
    assert_eq!(
        get(&app, "/projects/library/repositories", None)
            .await
            .status(),
        200
    );
    expect_error(
        get(&app, "/projects/library/repositories/pub", None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(
        get(
            &app,
            "/projects/library/repositories/pub",
            Some(("outsider", &outsider_pw)),
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;

    expect_error(put("guest", pw("guest")).await.unwrap(), 403, "FORBIDDEN").await;
    assert_eq!(put("dev", pw("dev")).await.unwrap().status(), 200);
    expect_error(
        delete("guest", pw("guest")).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(delete("dev", pw("dev")).await.unwrap(), 403, "FORBIDDEN").await;
    expect_error(
        delete("outsider", outsider_pw.clone()).await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(delete("keeper", pw("keeper")).await.unwrap().status(), 200);
    expect_error(
        get(
            &app,
            "/projects/team/repositories/app",
            Some(("keeper", &pw("keeper"))),
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
}
