//! `/projects/{p}/members` through the real HTTP API, and the RBAC matrix
//! of the project, member and metadata endpoints checked against
//! `rbac::allowed` for every role, non-members, anonymous callers and
//! system administrators.

use reqwest::Method;
use serde_json::{Value, json};
use wharf_projects::{Role, allowed};

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

#[tokio::test]
async fn project_admins_manage_members() {
    let app = ApiApp::spawn().await;
    let (owner, owner_pw) = app.create_user("adam").await;
    let (beth, _) = app.create_user("beth").await;
    app.create_user("bert").await;
    let id = app.create_project("crew", false).await;
    app.add_member(id, owner, Role::ProjectAdmin).await;
    let adam = Some(("adam", owner_pw.as_str()));
    let members = app.url("/projects/crew/members");

    // Add by id and by name.
    let resp = with_auth(&app, app.client.post(&members), adam)
        .json(&json!({"role_id": 2, "member_user": {"user_id": beth}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let loc = location(&resp);
    assert!(loc.starts_with("/api/v2.0/projects/crew/members/"), "{loc}");
    let beth_mid: i64 = loc.rsplit('/').next().unwrap().parse().unwrap();
    let resp = with_auth(&app, app.client.post(&members), adam)
        .json(&json!({"role_id": 3, "member_user": {"username": "bert"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let audit = app.last_audit("member").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str(),
            audit.project_id
        ),
        ("adam", "create", "bert", Some(id))
    );
    assert!(
        audit.operation_description.contains("guest"),
        "{}",
        audit.operation_description
    );

    let one = json_body(
        with_auth(
            &app,
            app.client
                .get(app.url(&format!("/projects/{id}/members/{beth_mid}"))),
            adam,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        one,
        json!({
            "id": beth_mid, "project_id": id, "entity_name": "beth", "role_name": "developer",
            "role_id": 2, "entity_id": beth, "entity_type": "u"
        })
    );

    // admin (creator), adam, bert, beth; by name.
    let resp = with_auth(&app, app.client.get(format!("{members}?page_size=2")), adam)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-total-count"], "4");
    assert!(
        resp.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"next\"")
    );
    let page: Vec<Value> = resp.json().await.unwrap();
    let names: Vec<&str> = page
        .iter()
        .map(|m| m["entity_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["adam", "admin"]);
    let filtered: Vec<Value> = with_auth(
        &app,
        app.client.get(format!("{members}?entityname=BE")),
        adam,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let names: Vec<&str> = filtered
        .iter()
        .map(|m| m["entity_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bert", "beth"]);

    // Change the role, then remove.
    let member_url = app.url(&format!("/projects/crew/members/{beth_mid}"));
    let resp = with_auth(&app, app.client.put(&member_url), adam)
        .json(&json!({"role_id": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let roles = wharf_projects::member_roles(app.pool(), id, beth)
        .await
        .unwrap();
    assert_eq!(roles, [Role::Maintainer]);
    let audit = app.last_audit("member").await.unwrap();
    assert_eq!(
        (audit.operation.as_str(), audit.resource.as_str()),
        ("update", "beth")
    );
    assert!(
        audit
            .operation_description
            .contains("developer to maintainer")
    );

    let resp = with_auth(&app, app.client.delete(&member_url), adam)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        wharf_projects::member_roles(app.pool(), id, beth)
            .await
            .unwrap()
            .is_empty()
    );
    let audit = app.last_audit("member").await.unwrap();
    assert_eq!(
        (audit.operation.as_str(), audit.resource.as_str()),
        ("delete", "beth")
    );
    expect_error(
        with_auth(&app, app.client.get(&member_url), adam)
            .send()
            .await
            .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        with_auth(&app, app.client.delete(&member_url), adam)
            .send()
            .await
            .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn member_requests_are_checked() {
    let app = ApiApp::spawn().await;
    let (owner, owner_pw) = app.create_user("cleo").await;
    let (dina, dina_pw) = app.create_user("dina").await;
    let id = app.create_project("checked", false).await;
    let cleo_mid = app.add_member(id, owner, Role::ProjectAdmin).await;
    let dina_mid = app.add_member(id, dina, Role::Guest).await;
    let cleo = Some(("cleo", owner_pw.as_str()));
    let post = |who: Option<(&str, &str)>, body: Value| {
        with_auth(
            &app,
            app.client.post(app.url("/projects/checked/members")),
            who,
        )
        .json(&body)
        .send()
    };

    let message = expect_error(
        post(
            cleo,
            json!({"role_id": 2, "member_user": {"user_id": dina}}),
        )
        .await
        .unwrap(),
        409,
        "CONFLICT",
    )
    .await;
    assert!(message.contains("dina"), "{message}");
    expect_error(
        post(
            cleo,
            json!({"role_id": 9, "member_user": {"user_id": dina}}),
        )
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        post(
            cleo,
            json!({"role_id": 2, "member_user": {"user_id": 99999}}),
        )
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        post(
            cleo,
            json!({"role_id": 2, "member_user": {"username": "ghost"}}),
        )
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    let message = expect_error(
        post(
            cleo,
            json!({"role_id": 2, "member_group": {"group_name": "devs"}}),
        )
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    assert!(message.contains("group"), "{message}");
    expect_error(
        post(cleo, json!({"role_id": 2})).await.unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    let bad_json = with_auth(
        &app,
        app.client.post(app.url("/projects/checked/members")),
        cleo,
    )
    .header("content-type", "application/json")
    .body("{\"role_id\": \"two\"}")
    .send()
    .await
    .unwrap();
    expect_error(bad_json, 400, "BAD_REQUEST").await;
    expect_error(
        post(
            Some(("dina", &dina_pw)),
            json!({"role_id": 2, "member_user": {"username": "cleo"}}),
        )
        .await
        .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        post(
            None,
            json!({"role_id": 2, "member_user": {"username": "cleo"}}),
        )
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;

    let put = |mid: i64, who: Option<(&str, &str)>, body: Value| {
        with_auth(
            &app,
            app.client
                .put(app.url(&format!("/projects/checked/members/{mid}"))),
            who,
        )
        .json(&body)
        .send()
    };
    expect_error(
        put(dina_mid, cleo, json!({"role_id": 0})).await.unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        put(99999, cleo, json!({"role_id": 2})).await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        app.as_admin(app.client.get(app.url("/projects/checked/members/abc")))
            .send()
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;

    // A project admin cannot demote or remove themselves; a system
    // administrator can change anyone.
    let message = expect_error(
        put(cleo_mid, cleo, json!({"role_id": 3})).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    assert!(message.contains("your own"), "{message}");
    expect_error(
        with_auth(
            &app,
            app.client
                .delete(app.url(&format!("/projects/checked/members/{cleo_mid}"))),
            cleo,
        )
        .send()
        .await
        .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    let admin = Some(("admin", app.admin_password.as_str()));
    assert_eq!(
        put(cleo_mid, admin, json!({"role_id": 4}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        wharf_projects::member_roles(app.pool(), id, owner)
            .await
            .unwrap(),
        [Role::Maintainer]
    );

    // Members of another project are not found through this one.
    let other = app.create_project("other", false).await;
    let other_mid = app.add_member(other, dina, Role::Guest).await;
    expect_error(
        app.as_admin(
            app.client
                .get(app.url(&format!("/projects/checked/members/{other_mid}"))),
        )
        .send()
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}

/// A principal of the matrix: its credentials, roles and admin flag.
struct Who {
    label: String,
    auth: Option<(String, String)>,
    roles: Vec<Role>,
    sysadmin: bool,
}

/// One check of the matrix: the permission it exercises and the request.
struct Check {
    resource: &'static str,
    action: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    /// The status when allowed.
    success: u16,
}

/// Every role, a non-member, an anonymous caller and a system administrator
/// against each project, member and metadata endpoint, on a private and a
/// public project: the answer must follow `rbac::allowed` exactly (allowed:
/// the endpoint's success status; denied: 404 when the project is invisible,
/// else 401 for anonymous and 403 for everyone else).
#[tokio::test]
async fn the_rbac_matrix_holds_through_the_api() {
    let app = ApiApp::spawn().await;
    let mut principals = Vec::new();
    let mut member_users = Vec::new();
    for role in Role::ALL {
        let name = format!("as-{}", role.name().to_lowercase());
        let (uid, password) = app.create_user(&name).await;
        member_users.push((uid, role));
        principals.push(Who {
            label: role.name().to_owned(),
            auth: Some((name, password)),
            roles: vec![role],
            sysadmin: false,
        });
    }
    let (_, password) = app.create_user("outsider").await;
    principals.push(Who {
        label: "non-member".into(),
        auth: Some(("outsider".into(), password)),
        roles: Vec::new(),
        sysadmin: false,
    });
    principals.push(Who {
        label: "anonymous".into(),
        auth: None,
        roles: Vec::new(),
        sysadmin: false,
    });
    let (root, password) = app.create_user("root2").await;
    app.as_admin(app.client.put(app.url(&format!("/users/{root}/sysadmin"))))
        .json(&json!({"sysadmin_flag": true}))
        .send()
        .await
        .unwrap();
    principals.push(Who {
        label: "sysadmin".into(),
        auth: Some(("root2".into(), password)),
        roles: Vec::new(),
        sysadmin: true,
    });
    let (target, _) = app.create_user("target").await;

    for public in [false, true] {
        let name = if public {
            "matrix-public"
        } else {
            "matrix-private"
        };
        let pid = app.create_project(name, public).await;
        for &(uid, role) in &member_users {
            app.add_member(pid, uid, role).await;
        }
        let target_mid = app.add_member(pid, target, Role::Guest).await;
        // A repository keeps DELETE from deleting (412 proves it was allowed).
        sqlx::query("INSERT INTO repositories (name, project) VALUES ($1, $2)")
            .bind(format!("{name}/app"))
            .bind(name)
            .execute(app.pool())
            .await
            .unwrap();
        app.as_admin(
            app.client
                .post(app.url(&format!("/projects/{pid}/metadatas/"))),
        )
        .json(&json!({"auto_scan": "true"}))
        .send()
        .await
        .unwrap();

        for who in &principals {
            let checks = [
                Check {
                    resource: "",
                    action: "read",
                    method: Method::GET,
                    path: format!("/projects/{pid}"),
                    body: None,
                    success: 200,
                },
                Check {
                    resource: "",
                    action: "read",
                    method: Method::GET,
                    path: format!("/projects/{pid}/summary"),
                    body: None,
                    success: 200,
                },
                Check {
                    resource: "",
                    action: "update",
                    method: Method::PUT,
                    path: format!("/projects/{pid}"),
                    body: Some(json!({"metadata": {"auto_scan": "true"}})),
                    success: 200,
                },
                Check {
                    resource: "",
                    action: "delete",
                    method: Method::GET,
                    path: format!("/projects/{pid}/_deletable"),
                    body: None,
                    success: 200,
                },
                Check {
                    resource: "",
                    action: "delete",
                    method: Method::DELETE,
                    path: format!("/projects/{pid}"),
                    body: None,
                    success: 412,
                },
                Check {
                    resource: "member",
                    action: "list",
                    method: Method::GET,
                    path: format!("/projects/{pid}/members"),
                    body: None,
                    success: 200,
                },
                Check {
                    resource: "member",
                    action: "read",
                    method: Method::GET,
                    path: format!("/projects/{pid}/members/{target_mid}"),
                    body: None,
                    success: 200,
                },
                Check {
                    resource: "member",
                    action: "create",
                    method: Method::POST,
                    path: format!("/projects/{pid}/members"),
                    body: Some(json!({"role_id": 3, "member_user": {"user_id": target}})),
                    // Already a member: 409 shows the permission check passed.
                    success: 409,
                },
                Check {
                    resource: "member",
                    action: "update",
                    method: Method::PUT,
                    path: format!("/projects/{pid}/members/{target_mid}"),
                    body: Some(json!({"role_id": 3})),
                    success: 200,
                },
                Check {
                    resource: "metadata",
                    action: "read",
                    method: Method::GET,
                    path: format!("/projects/{pid}/metadatas/"),
                    body: None,
                    success: 200,
                },
                Check {
                    resource: "metadata",
                    action: "read",
                    method: Method::GET,
                    path: format!("/projects/{pid}/metadatas/auto_scan"),
                    body: None,
                    success: 200,
                },
                Check {
                    resource: "metadata",
                    action: "create",
                    method: Method::POST,
                    path: format!("/projects/{pid}/metadatas/"),
                    body: Some(json!({"auto_scan": "true"})),
                    // Already set: 409 shows the permission check passed.
                    success: 409,
                },
                Check {
                    resource: "metadata",
                    action: "update",
                    method: Method::PUT,
                    path: format!("/projects/{pid}/metadatas/auto_scan"),
                    body: Some(json!({"auto_scan": "true"})),
                    success: 200,
                },
            ];
            for check in checks {
                expect_decision(&app, who, public, &check).await;
            }

            // Deletions change state: restore after each allowed one.
            let member_delete = Check {
                resource: "member",
                action: "delete",
                method: Method::DELETE,
                path: format!("/projects/{pid}/members/{target_mid}"),
                body: None,
                success: 200,
            };
            if expect_decision(&app, who, public, &member_delete).await {
                sqlx::query(
                    "INSERT INTO project_members (id, project_id, entity_id, entity_type, role)
                     VALUES ($1, $2, $3, 'u', 3)",
                )
                .bind(target_mid)
                .bind(pid)
                .bind(target)
                .execute(app.pool())
                .await
                .unwrap();
            }
            let metadata_delete = Check {
                resource: "metadata",
                action: "delete",
                method: Method::DELETE,
                path: format!("/projects/{pid}/metadatas/auto_scan"),
                body: None,
                success: 200,
            };
            if expect_decision(&app, who, public, &metadata_delete).await {
                app.as_admin(
                    app.client
                        .post(app.url(&format!("/projects/{pid}/metadatas/"))),
                )
                .json(&json!({"auto_scan": "true"}))
                .send()
                .await
                .unwrap();
            }
        }
    }
}

/// Send `check` as `who` and assert the answer matches `rbac::allowed`;
/// returns whether it was allowed.
async fn expect_decision(app: &ApiApp, who: &Who, public: bool, check: &Check) -> bool {
    let expected = allowed(
        &who.roles,
        who.sysadmin,
        public,
        check.resource,
        check.action,
    );
    let visible = allowed(&who.roles, who.sysadmin, public, "", "read");
    let rb = app
        .client
        .request(check.method.clone(), app.url(&check.path));
    let rb = match &who.auth {
        Some((name, secret)) => app.as_basic(rb, name, secret),
        None => rb,
    };
    let rb = match &check.body {
        Some(body) => rb.json(body),
        None => rb,
    };
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let wanted = if expected {
        check.success
    } else if !visible {
        404
    } else if who.auth.is_none() {
        401
    } else {
        403
    };
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(
        status,
        wanted,
        "{} {} {} on a {} project ({}:{} allowed = {expected}): {body}",
        who.label,
        check.method,
        check.path,
        if public { "public" } else { "private" },
        if check.resource.is_empty() {
            "project"
        } else {
            check.resource
        },
        check.action,
    );
    expected
}
