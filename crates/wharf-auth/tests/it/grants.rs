//! The token endpoint itself: response shapes, the OAuth2 `password` and
//! `refresh_token` grants, refresh tokens from `offline_token`, and refusals.

use reqwest::Method;
use serde_json::Value;

use crate::support::{Creds, PASSWORD, TestApp, claims, granted};

/// A form-encoded body, as pairs.
type Form<'a> = &'a [(&'a str, &'a str)];

async fn post(app: &TestApp, form: Form<'_>) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/service/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn get_issues_docker_tokens() {
    let app = TestApp::spawn().await;
    let admin = app.admin_creds();

    // `docker login` probes with credentials and no scope.
    let resp = app
        .http
        .get(app.url("/service/token"))
        .query(&[
            ("account", "admin"),
            ("client_id", "docker"),
            ("offline_token", "true"),
            ("service", "wharf-registry"),
        ])
        .header("Authorization", admin.header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], 1800);
    chrono::DateTime::parse_from_rfc3339(body["issued_at"].as_str().unwrap()).unwrap();
    assert!(
        body["refresh_token"].is_string(),
        "offline_token=true gives a refresh token"
    );

    let header: Value = {
        use base64::Engine as _;
        let raw = token.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(raw)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));
    let c = claims(token);
    assert_eq!(c["iss"], "wharf-token-issuer");
    assert_eq!(c["aud"], "wharf-registry");
    assert_eq!(c["sub"], "admin");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        1800
    );
    assert_eq!(c["nbf"], c["iat"]);
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(c["access"], serde_json::json!([]));

    // Anonymous: refused without a scope, an anonymous token with one.
    let resp = app.token_response(None, &[]).await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let resp = app
        .http
        .get(app.url("/service/token"))
        .query(&[
            ("service", "wharf-registry"),
            ("scope", "repository:library/app:pull,push"),
            ("offline_token", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for nobody"
    );
    let anonymous = body["token"].as_str().unwrap();
    assert_eq!(claims(anonymous)["sub"], "");
    assert_eq!(granted(anonymous, "repository", "library/app"), ["pull"]);

    // Several scopes, in one parameter and in several.
    let resp = app
        .http
        .get(app.url("/service/token"))
        .query(&[
            ("service", "wharf-registry"),
            (
                "scope",
                "repository:library/a:pull repository:library/b:push",
            ),
            ("scope", "repository:nowhere/c:pull"),
            ("scope", "repository:Bad Name:pull"),
            ("scope", "registry:catalog:*"),
            ("scope", "something:else:read"),
        ])
        .header("Authorization", admin.header())
        .send()
        .await
        .unwrap();
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(granted(&token, "repository", "library/a"), ["pull"]);
    assert_eq!(granted(&token, "repository", "library/b"), ["push"]);
    assert!(
        granted(&token, "repository", "nowhere/c").is_empty(),
        "unknown project"
    );
    assert!(
        granted(&token, "repository", "Bad Name").is_empty(),
        "malformed name"
    );
    assert_eq!(granted(&token, "registry", "catalog"), ["*"]);
    assert!(granted(&token, "something", "else").is_empty());

    // Refusals.
    let bad = Creds::new("admin", "Wrong-passw0rd");
    assert_eq!(
        app.token_response(Some(&bad), &["repository:library/a:pull"])
            .await
            .status(),
        401
    );
    let resp = app
        .http
        .get(app.url("/service/token"))
        .query(&[
            ("service", "other-registry"),
            ("scope", "repository:library/a:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn post_password_and_refresh_grants() {
    let app = TestApp::spawn().await;
    app.push_image(Some(&app.admin_creds()), "library/app", "v1")
        .await
        .unwrap();
    let user = app.create_user("dev").await;
    let library = wharf_projects::get_project_by_name(&app.pool, "library")
        .await
        .unwrap();
    app.add_member(&library, &user, wharf_projects::Role::Developer)
        .await;

    let (status, body) = post(
        &app,
        &[
            ("grant_type", "password"),
            ("service", "wharf-registry"),
            ("client_id", "containerd"),
            ("access_type", "offline"),
            ("username", "dev"),
            ("password", PASSWORD),
            ("scope", "repository:library/app:pull,push,delete"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "repository:library/app:pull,push");
    assert_eq!(body["expires_in"], 1800);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.with_token(Method::GET, "/v2/library/app/manifests/v1", &access)
            .await
            .status(),
        200
    );

    // The refresh token is no access token.
    let resp = app
        .with_token(Method::GET, "/v2/library/app/manifests/v1", &refresh)
        .await;
    assert_eq!(resp.status(), 401);
    assert!(crate::support::challenge_of(&resp).contains("error=\"invalid_token\""));
    assert_eq!(
        app.with_token(Method::GET, "/v2/", &refresh).await.status(),
        401
    );

    // It buys new access tokens, with current rights.
    let (status, body) = post(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("service", "wharf-registry"),
            ("client_id", "containerd"),
            ("refresh_token", &refresh),
            (
                "scope",
                "repository:library/app:pull repository:library/app:delete",
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "repository:library/app:pull");
    assert!(body.get("refresh_token").is_none());
    let renewed = body["access_token"].as_str().unwrap();
    assert_eq!(claims(renewed)["sub"], "dev");
    assert_eq!(
        app.with_token(Method::GET, "/v2/library/app/manifests/v1", renewed)
            .await
            .status(),
        200
    );

    // An access token is no refresh token.
    let (status, body) = post(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("service", "wharf-registry"),
            ("refresh_token", &access),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_grant"))
    );

    // Without access_type=offline there is no refresh token.
    let (status, body) = post(
        &app,
        &[
            ("grant_type", "password"),
            ("service", "wharf-registry"),
            ("username", "dev"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none());

    // OAuth2 errors.
    let cases: [(Form, u16, &str); 5] = [
        (
            &[
                ("grant_type", "password"),
                ("service", "wharf-registry"),
                ("username", "dev"),
                ("password", "Wrong-passw0rd"),
            ],
            401,
            "invalid_grant",
        ),
        (
            &[("grant_type", "password"), ("username", "dev")],
            400,
            "invalid_request",
        ),
        (
            &[("grant_type", "client_credentials")],
            400,
            "unsupported_grant_type",
        ),
        (&[("grant_type", "refresh_token")], 400, "invalid_request"),
        (
            &[
                ("grant_type", "password"),
                ("service", "elsewhere"),
                ("username", "dev"),
                ("password", PASSWORD),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (form, want_status, want_error) in cases {
        let (status, body) = post(&app, form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (want_status, Some(want_error)),
            "{form:?}"
        );
    }
}

#[tokio::test]
async fn refresh_tokens_die_with_their_account() {
    let app = TestApp::spawn().await;
    let user = app.create_user("temp").await;
    let creds = Creds::new("temp", PASSWORD);
    let resp = app
        .http
        .get(app.url("/service/token"))
        .query(&[("service", "wharf-registry"), ("offline_token", "true")])
        .header("Authorization", creds.header())
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let grant = [
        ("grant_type", "refresh_token"),
        ("service", "wharf-registry"),
        ("refresh_token", refresh.as_str()),
    ];
    assert_eq!(post(&app, &grant).await.0, 200);

    wharf_projects::delete_user(&app.pool, user.id)
        .await
        .unwrap();
    let (status, body) = post(&app, &grant).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_grant"))
    );

    // A new account under the same name is somebody else.
    app.create_user("temp").await;
    let (status, _) = post(&app, &grant).await;
    assert_eq!(
        status, 401,
        "a same-named new account does not inherit refresh tokens"
    );

    // Robots too: disabling one ends its refresh tokens.
    app.create_project("ci", false).await;
    let robot = app.create_robot("ci", "builder", &["pull"]).await;
    let (status, body) = post(
        &app,
        &[
            ("grant_type", "password"),
            ("service", "wharf-registry"),
            ("access_type", "offline"),
            ("username", &robot.name),
            ("password", &robot.secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let grant = [
        ("grant_type", "refresh_token"),
        ("service", "wharf-registry"),
        ("refresh_token", refresh.as_str()),
        ("scope", "repository:ci/app:pull"),
    ];
    let (status, body) = post(&app, &grant).await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "repository:ci/app:pull");
    sqlx::query("UPDATE robots SET disabled = true WHERE name = 'ci+builder'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(post(&app, &grant).await.0, 401);
}
