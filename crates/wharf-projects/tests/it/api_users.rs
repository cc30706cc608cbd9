//! `/users` through the real HTTP API: accounts, profiles, passwords, the
//! admin flag, search and the caller's permissions.

use serde_json::{Value, json};

use crate::api_support::{ApiApp, expect_error, json_body, location};

async fn get(app: &ApiApp, path: &str, who: Option<(&str, &str)>) -> reqwest::Response {
    let rb = app.client.get(app.url(path));
    let rb = match who {
        Some((name, secret)) => app.as_basic(rb, name, secret),
        None => rb,
    };
    rb.send().await.expect("request")
}

#[tokio::test]
async fn admin_creates_a_user_and_reads_it_back() {
    let app = ApiApp::spawn().await;
    let resp = app
        .as_admin(app.client.post(app.url("/users")))
        .json(&json!({
            "username": "alice", "email": "alice@example.com", "realname": "Alice A.",
            "comment": "dev", "password": "Alice12345"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let loc = location(&resp);
    assert!(
        loc.starts_with("/api/v2.0/users/"),
        "Location {loc:?} is Harbor's"
    );
    let id: i64 = loc.rsplit('/').next().unwrap().parse().unwrap();

    let user = json_body(
        app.as_admin(app.client.get(app.url(&format!("/users/{id}"))))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user["user_id"], id);
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["realname"], "Alice A.");
    assert_eq!(user["comment"], "dev");
    assert_eq!(user["sysadmin_flag"], false);
    assert_eq!(user["admin_role_in_auth"], false);
    assert!(user["creation_time"].is_string() && user["update_time"].is_string());
    let text = user.to_string();
    assert!(
        !text.contains("password") && !text.contains("Alice12345"),
        "{text}"
    );

    // The new account works with its password.
    let me = json_body(get(&app, "/users/current", Some(("alice", "Alice12345"))).await).await;
    assert_eq!(me["username"], "alice");

    let audit = app.last_audit("user").await.expect("audit entry");
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str()
        ),
        ("admin", "create", "alice")
    );
    assert_eq!(audit.project_id, None);
    assert_eq!(audit.client_addr.as_deref(), Some("127.0.0.1"));
    assert!(audit.operation_result);
}

#[tokio::test]
async fn user_creation_refuses_bad_input_and_conflicts() {
    let app = ApiApp::spawn().await;
    app.create_user("taken").await;
    let post = |body: Value| {
        app.as_admin(app.client.post(app.url("/users")))
            .json(&body)
            .send()
    };
    let good = |name: &str, email: &str| json!({"username": name, "email": email, "realname": name, "password": "Secret123"});

    let bad_json = app
        .as_admin(app.client.post(app.url("/users")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let message = expect_error(bad_json, 400, "BAD_REQUEST").await;
    assert!(message.contains("JSON"), "{message}");

    let weak = post(json!({"username": "bob", "email": "bob@example.com", "realname": "Bob", "password": "short"}))
        .await
        .unwrap();
    let message = expect_error(weak, 400, "BAD_REQUEST").await;
    assert!(message.contains("uppercase"), "policy explained: {message}");

    let bad_name = post(good("bo#b", "bob@example.com")).await.unwrap();
    expect_error(bad_name, 400, "BAD_REQUEST").await;
    let no_email = post(good("bob", "")).await.unwrap();
    expect_error(no_email, 400, "BAD_REQUEST").await;
    let bad_email = post(good("bob", "not-an-address")).await.unwrap();
    expect_error(bad_email, 400, "BAD_REQUEST").await;

    let same_name = post(good("taken", "other@example.com")).await.unwrap();
    expect_error(same_name, 409, "CONFLICT").await;
    let same_email = post(good("other", "TAKEN@example.com")).await.unwrap();
    expect_error(same_email, 409, "CONFLICT").await;

    let anonymous = app
        .client
        .post(app.url("/users"))
        .json(&good("carol", "carol@example.com"))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, 401, "UNAUTHORIZED").await;

    let (_, password) = app.create_user("dave").await;
    let not_admin = app
        .as_basic(app.client.post(app.url("/users")), "dave", &password)
        .json(&good("carol", "carol@example.com"))
        .send()
        .await
        .unwrap();
    expect_error(not_admin, 403, "FORBIDDEN").await;

    let wrong_password = app
        .as_basic(
            app.client.get(app.url("/users/current")),
            "dave",
            "Wrong1234",
        )
        .send()
        .await
        .unwrap();
    expect_error(wrong_password, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn listing_users_pages_filters_and_sorts() {
    let app = ApiApp::spawn().await;
    for name in ["amy", "anna", "bert", "carl"] {
        app.create_user(name).await;
    }
    let list = |query: &str| {
        app.as_admin(app.client.get(app.url(&format!("/users?{query}"))))
            .send()
    };

    let resp = list("page=1&page_size=2").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "5", "admin + 4 users");
    let link = resp.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("page=2") && link.contains("rel=\"next\""),
        "{link}"
    );
    let page: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(page.len(), 2);

    let names = |v: Vec<Value>| -> Vec<String> {
        v.iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    let fuzzy = list("q=username%3D~an").await.unwrap();
    assert_eq!(names(fuzzy.json().await.unwrap()), ["anna"]);
    let exact = list("q=email%3Damy%40example.com").await.unwrap();
    assert_eq!(names(exact.json().await.unwrap()), ["amy"]);
    let sorted = list("sort=-username&page_size=3").await.unwrap();
    assert_eq!(
        names(sorted.json().await.unwrap()),
        ["carl", "bert", "anna"]
    );
    let param = list("username=er").await.unwrap();
    assert_eq!(names(param.json().await.unwrap()), ["bert"]);

    expect_error(list("q=nmae%3Dx").await.unwrap(), 400, "BAD_REQUEST").await;
    expect_error(list("sort=colour").await.unwrap(), 400, "BAD_REQUEST").await;
    expect_error(list("page_size=1000").await.unwrap(), 400, "BAD_REQUEST").await;
    expect_error(list("page=abc").await.unwrap(), 400, "BAD_REQUEST").await;

    expect_error(get(&app, "/users", None).await, 401, "UNAUTHORIZED").await;
    let (_, password) = app.create_user("eve").await;
    expect_error(
        get(&app, "/users", Some(("eve", &password))).await,
        403,
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn current_user_is_for_signed_in_users_only() {
    let app = ApiApp::spawn().await;
    let (id, password) = app.create_user("frank").await;
    let me = json_body(get(&app, "/users/current", Some(("frank", &password))).await).await;
    assert_eq!(me["user_id"], id);

    expect_error(get(&app, "/users/current", None).await, 401, "UNAUTHORIZED").await;

    let (robot, secret) = app
        .robot("ci", &[("system", "/", &[("project", "list")])])
        .await;
    expect_error(
        get(&app, "/users/current", Some((&robot, &secret))).await,
        412,
        "PRECONDITION",
    )
    .await;
}

/// The caller's permissions in `scope` as `resource:action` strings.
async fn perms(app: &ApiApp, who: (&str, String), scope: String) -> Vec<String> {
    let resp = get(
        app,
        &format!("/users/current/permissions?{scope}"),
        Some((who.0, &who.1)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let list: Vec<Value> = resp.json().await.unwrap();
    list.into_iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["resource"].as_str().unwrap(),
                p["action"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn permissions_describe_what_the_caller_may_do() {
    let app = ApiApp::spawn().await;
    let (dev_id, password) = app.create_user("gina").await;
    let project = app.create_project("secret", false).await;
    app.add_member(project, dev_id, wharf_projects::Role::Developer)
        .await;
    let admin = ("admin", app.admin_password.clone());
    let gina = ("gina", password.clone());

    let system = perms(&app, admin.clone(), "scope=/system".into()).await;
    assert!(
        system.contains(&"/system/user:create".to_owned()),
        "{system:?}"
    );
    let user_system = perms(&app, gina.clone(), "scope=/system&relative=true".into()).await;
    assert_eq!(user_system, ["project:create", "project:list"]);

    let dev = perms(
        &app,
        gina.clone(),
        format!("scope=/project/{project}&relative=true"),
    )
    .await;
    for expected in [".:read", "repository:push", "member:list"] {
        assert!(dev.contains(&expected.to_owned()), "{expected} in {dev:?}");
    }
    assert!(!dev.contains(&"member:create".to_owned()), "{dev:?}");
    let absolute = perms(&app, gina.clone(), format!("scope=/project/{project}")).await;
    assert!(absolute.contains(&format!("/project/{project}/repository:push")));
    assert!(absolute.contains(&format!("/project/{project}:read")));

    let (_, other) = app.create_user("hank").await;
    let outsider = perms(&app, ("hank", other), format!("scope=/project/{project}")).await;
    assert!(outsider.is_empty(), "a private project shows nothing");
    assert!(perms(&app, gina, "scope=/nowhere".into()).await.is_empty());

    expect_error(
        get(&app, "/users/current/permissions?scope=/system", None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn anyone_signed_in_can_search_users_by_name() {
    let app = ApiApp::spawn().await;
    let (ivy, password) = app.create_user("ivy").await;
    app.create_user("ivan").await;
    app.create_user("otto").await;
    let resp = get(
        &app,
        "/users/search?username=iv&page_size=1",
        Some(("ivy", &password)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-total-count"], "2");
    assert!(resp.headers().contains_key("link"));
    let hits: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].as_object().unwrap().len(), 2, "only id and name");

    let all: Vec<Value> = get(&app, "/users/search?username=iv", Some(("ivy", &password)))
        .await
        .json()
        .await
        .unwrap();
    assert!(all.contains(&json!({"user_id": ivy, "username": "ivy"})));

    expect_error(
        get(&app, "/users/search", Some(("ivy", &password))).await,
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        get(&app, "/users/search?username=iv", None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn profiles_are_read_and_edited_by_their_owner_or_an_admin() {
    let app = ApiApp::spawn().await;
    let (jo, password) = app.create_user("jo").await;
    let (kim, _) = app.create_user("kim").await;
    let jo_auth = ("jo", password.as_str());

    assert_eq!(
        get(&app, &format!("/users/{jo}"), Some(jo_auth))
            .await
            .status(),
        200
    );
    expect_error(
        get(&app, &format!("/users/{kim}"), Some(jo_auth)).await,
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        get(&app, &format!("/users/{jo}"), None).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(
        get(&app, "/users/99999", Some(("admin", &app.admin_password))).await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        get(&app, "/users/abc", Some(("admin", &app.admin_password))).await,
        400,
        "BAD_REQUEST",
    )
    .await;

    let put = |id: i64, who: (&str, &str), body: Value| {
        app.as_basic(
            app.client.put(app.url(&format!("/users/{id}"))),
            who.0,
            who.1,
        )
        .json(&body)
        .send()
    };
    let profile = json!({"email": "jo@new.example", "realname": "Jo New", "comment": "moved"});
    assert_eq!(
        put(jo, jo_auth, profile.clone()).await.unwrap().status(),
        200
    );
    let me = json_body(get(&app, "/users/current", Some(jo_auth)).await).await;
    assert_eq!(
        (&me["email"], &me["realname"], &me["comment"]),
        (&json!("jo@new.example"), &json!("Jo New"), &json!("moved"))
    );
    let audit = app.last_audit("user").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str()
        ),
        ("jo", "update", "jo")
    );

    expect_error(
        put(kim, jo_auth, profile.clone()).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        put(jo, jo_auth, json!({"email": "nope", "realname": "Jo"}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    let taken = json!({"email": "kim@example.com", "realname": "Jo"});
    expect_error(put(jo, jo_auth, taken).await.unwrap(), 409, "CONFLICT").await;
    let admin = ("admin", app.admin_password.as_str());
    assert_eq!(
        put(
            kim,
            admin,
            json!({"email": "kim@x.example", "realname": "Kim"})
        )
        .await
        .unwrap()
        .status(),
        200
    );
}

#[tokio::test]
async fn passwords_change_with_the_old_one_or_by_an_admin() {
    let app = ApiApp::spawn().await;
    let (lee, old) = app.create_user("lee").await;
    let (max, max_password) = app.create_user("max").await;
    let put = |id: i64, who: (&str, &str), body: Value| {
        app.as_basic(
            app.client.put(app.url(&format!("/users/{id}/password"))),
            who.0,
            who.1,
        )
        .json(&body)
        .send()
    };

    let wrong_old = put(
        lee,
        ("lee", &old),
        json!({"old_password": "Wrong1234", "new_password": "Better123"}),
    )
    .await
    .unwrap();
    expect_error(wrong_old, 403, "FORBIDDEN").await;
    let weak = put(
        lee,
        ("lee", &old),
        json!({"old_password": old, "new_password": "weak"}),
    )
    .await
    .unwrap();
    expect_error(weak, 400, "BAD_REQUEST").await;
    let same = put(
        lee,
        ("lee", &old),
        json!({"old_password": old, "new_password": old}),
    )
    .await
    .unwrap();
    expect_error(same, 400, "BAD_REQUEST").await;
    let someone_else = put(
        max,
        ("lee", &old),
        json!({"old_password": max_password, "new_password": "Better123"}),
    )
    .await
    .unwrap();
    expect_error(someone_else, 403, "FORBIDDEN").await;

    let ok = put(
        lee,
        ("lee", &old),
        json!({"old_password": old, "new_password": "Better123"}),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        get(&app, "/users/current", Some(("lee", "Better123")))
            .await
            .status(),
        200
    );
    expect_error(
        get(&app, "/users/current", Some(("lee", &old))).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let audit = app.last_audit("user").await.unwrap();
    assert_eq!(
        (audit.operation.as_str(), audit.resource.as_str()),
        ("update", "lee")
    );
    assert!(!audit.operation_description.contains("Better123"));

    // An administrator resets someone else's without the old password.
    let reset = put(
        max,
        ("admin", &app.admin_password),
        json!({"new_password": "Reset1234"}),
    )
    .await
    .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(
        get(&app, "/users/current", Some(("max", "Reset1234")))
            .await
            .status(),
        200
    );
    expect_error(
        put(
            max,
            ("admin", &app.admin_password),
            json!({"new_password": "Reset1234"}),
        )
        .await
        .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        put(
            99999,
            ("admin", &app.admin_password),
            json!({"new_password": "Reset1234"}),
        )
        .await
        .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn the_admin_flag_is_granted_by_admins_but_not_to_themselves() {
    let app = ApiApp::spawn().await;
    let (ned, password) = app.create_user("ned").await;
    let admin_id = wharf_projects::get_user_by_name(app.pool(), "admin")
        .await
        .unwrap()
        .id;
    let put = |id: i64, who: (&str, &str), body: Value| {
        app.as_basic(
            app.client.put(app.url(&format!("/users/{id}/sysadmin"))),
            who.0,
            who.1,
        )
        .json(&body)
        .send()
    };
    let admin = ("admin", app.admin_password.as_str());

    expect_error(
        put(ned, ("ned", &password), json!({"sysadmin_flag": true}))
            .await
            .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        put(admin_id, admin, json!({"sysadmin_flag": false}))
            .await
            .unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        put(ned, admin, json!({"sysadmin_flag": "yes"}))
            .await
            .unwrap(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_error(
        put(99999, admin, json!({"sysadmin_flag": true}))
            .await
            .unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;

    assert_eq!(
        put(ned, admin, json!({"sysadmin_flag": true}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(&app, "/users", Some(("ned", &password))).await.status(),
        200
    );
    let audit = app.last_audit("user").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str()
        ),
        ("admin", "update", "ned")
    );
    assert!(audit.operation_description.contains("granted"));

    assert_eq!(
        put(ned, admin, json!({"sysadmin_flag": false}))
            .await
            .unwrap()
            .status(),
        200
    );
    expect_error(
        get(&app, "/users", Some(("ned", &password))).await,
        403,
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn admins_delete_users_but_not_themselves_or_admin() {
    let app = ApiApp::spawn().await;
    let (oli, password) = app.create_user("oli").await;
    let (pam, pam_password) = app.create_user("pam").await;
    let admin_id = wharf_projects::get_user_by_name(app.pool(), "admin")
        .await
        .unwrap()
        .id;
    let delete = |id: i64, who: (&str, &str)| {
        app.as_basic(
            app.client.delete(app.url(&format!("/users/{id}"))),
            who.0,
            who.1,
        )
        .send()
    };
    let admin = ("admin", app.admin_password.as_str());

    expect_error(
        delete(pam, ("oli", &password)).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(delete(admin_id, admin).await.unwrap(), 403, "FORBIDDEN").await;
    expect_error(
        app.client
            .delete(app.url(&format!("/users/{pam}")))
            .send()
            .await
            .unwrap(),
        401,
        "UNAUTHORIZED",
    )
    .await;

    // Another administrator may not delete `admin` either, nor themselves.
    app.as_admin(app.client.put(app.url(&format!("/users/{pam}/sysadmin"))))
        .json(&json!({"sysadmin_flag": true}))
        .send()
        .await
        .unwrap();
    expect_error(
        delete(admin_id, ("pam", &pam_password)).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;
    expect_error(
        delete(pam, ("pam", &pam_password)).await.unwrap(),
        403,
        "FORBIDDEN",
    )
    .await;

    assert_eq!(delete(oli, admin).await.unwrap().status(), 200);
    expect_error(
        get(&app, &format!("/users/{oli}"), Some(admin)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    expect_error(
        get(&app, "/users/current", Some(("oli", &password))).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    expect_error(delete(oli, admin).await.unwrap(), 404, "NOT_FOUND").await;
    let audit = app.last_audit("user").await.unwrap();
    assert_eq!(
        (
            audit.username.as_str(),
            audit.operation.as_str(),
            audit.resource.as_str()
        ),
        ("admin", "delete", "oli")
    );
    // The name is free again.
    app.create_user("oli").await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_user_route() {
    let doc = serde_json::to_value(wharf_projects::http::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/users",
        "/users/current",
        "/users/current/permissions",
        "/users/search",
        "/users/{user_id}",
        "/users/{user_id}/password",
        "/users/{user_id}/sysadmin",
        "/projects",
        "/projects/{project_name_or_id}",
        "/projects/{project_name_or_id}/_deletable",
        "/projects/{project_name_or_id}/summary",
        "/projects/{project_name_or_id}/metadatas/",
        "/projects/{project_name_or_id}/metadatas/{meta_name}",
        "/projects/{project_name_or_id}/members",
        "/projects/{project_name_or_id}/members/{mid}",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }
    assert!(paths["/users"]["post"]["responses"]["409"].is_object());
    assert!(paths["/projects"]["head"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "UserResp",
        "Project",
        "ProjectReq",
        "ProjectMemberEntity",
        "Errors",
    ] {
        assert!(schemas.contains_key(schema), "{schema} documented");
    }
    assert!(doc["components"]["securitySchemes"]["basic"].is_object());
}
