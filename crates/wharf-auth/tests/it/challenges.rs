//! The exact `WWW-Authenticate` challenges, where the realm comes from, and
//! when `X-Forwarded-*` headers are believed.

use reqwest::Method;

use crate::support::{TestApp, WhoAmI, challenge_of};

async fn challenge(app: &TestApp, method: Method, path: &str) -> String {
    let resp = app
        .http
        .request(method, app.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "{path}");
    assert_eq!(
        resp.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    challenge_of(&resp)
}

#[tokio::test]
async fn challenges_name_the_scope_each_request_needs() {
    let app = TestApp::spawn().await;
    let realm = format!(
        "Bearer realm=\"http://127.0.0.1:{}/service/token\",service=\"wharf-registry\"",
        app.port
    );
    let cases = [
        (Method::GET, "/v2/", realm.clone()),
        (
            Method::GET,
            "/v2/library/app/manifests/v1",
            format!("{realm},scope=\"repository:library/app:pull\""),
        ),
        (
            Method::HEAD,
            "/v2/library/app/manifests/v1",
            format!("{realm},scope=\"repository:library/app:pull\""),
        ),
        (
            Method::GET,
            "/v2/library/team/app/tags/list",
            format!("{realm},scope=\"repository:library/team/app:pull\""),
        ),
        (
            Method::PUT,
            "/v2/library/app/manifests/v1",
            format!("{realm},scope=\"repository:library/app:pull,push\""),
        ),
        (
            Method::POST,
            "/v2/library/app/blobs/uploads/",
            format!("{realm},scope=\"repository:library/app:pull,push\""),
        ),
        (
            Method::DELETE,
            "/v2/library/app/manifests/v1",
            format!("{realm},scope=\"repository:library/app:delete\""),
        ),
        (
            Method::GET,
            "/v2/_catalog",
            format!("{realm},scope=\"registry:catalog:*\""),
        ),
    ];
    for (method, path, want) in cases {
        assert_eq!(
            challenge(&app, method.clone(), path).await,
            want,
            "{method} {path}"
        );
    }

    // Public projects challenge too: Docker then fetches an anonymous token.
    app.push_image(Some(&app.admin_creds()), "library/app", "v1")
        .await
        .unwrap();
    assert_eq!(
        challenge(&app, Method::GET, "/v2/library/app/manifests/v1").await,
        format!("{realm},scope=\"repository:library/app:pull\"")
    );
    assert_eq!(app.pull_status(None, "library/app", "v1").await, 200);

    // A bad token, and a good one that lacks the scope.
    let resp = app
        .with_token(Method::GET, "/v2/library/app/manifests/v1", "junk")
        .await;
    assert_eq!(
        challenge_of(&resp),
        format!("{realm},scope=\"repository:library/app:pull\",error=\"invalid_token\"")
    );
    let anonymous = app.token(None, &["repository:library/app:pull"]).await;
    let resp = app
        .with_token(Method::DELETE, "/v2/library/app/manifests/v1", &anonymous)
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        challenge_of(&resp),
        format!("{realm},scope=\"repository:library/app:delete\",error=\"insufficient_scope\"")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    // The anonymous token still opens the base endpoint.
    let resp = app.with_token(Method::GET, "/v2/", &anonymous).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_realm_follows_the_external_url() {
    let app = TestApp::builder()
        .external_url("https://registry.example.com/")
        .spawn()
        .await;
    let resp = app
        .http
        .get(app.url("/v2/"))
        .header("Host", "elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenge_of(&resp),
        "Bearer realm=\"https://registry.example.com/service/token\",service=\"wharf-registry\""
    );
}

async fn whoami(app: &TestApp, forwarded_for: Option<&str>) -> WhoAmI {
    let mut req = app.http.get(app.url("/api/v2.0/whoami"));
    if let Some(xff) = forwarded_for {
        req = req.header("X-Forwarded-For", xff);
    }
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let app = TestApp::spawn().await;
    let resp = app
        .http
        .get(app.url("/v2/"))
        .header("Host", "wharf.local:5000")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenge_of(&resp),
        "Bearer realm=\"http://wharf.local:5000/service/token\",service=\"wharf-registry\""
    );
    let me = whoami(&app, Some("198.51.100.7")).await;
    assert_eq!(me.client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(me.kind, "anonymous");
}

#[tokio::test]
async fn forwarded_headers_from_trusted_proxies_are_honoured() {
    let app = TestApp::builder()
        .config(|c| c.trusted_proxies = vec!["127.0.0.1".into(), "10.0.0.0/8".into()])
        .spawn()
        .await;
    let resp = app
        .http
        .get(app.url("/v2/"))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "public.example:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(
        challenge_of(&resp),
        "Bearer realm=\"https://public.example:8443/service/token\",service=\"wharf-registry\""
    );
    let cases = [
        (None, "127.0.0.1"),
        (Some("198.51.100.7"), "198.51.100.7"),
        // Our own proxies are skipped.
        (Some("198.51.100.7, 10.1.2.3"), "198.51.100.7"),
        // What the client wrote itself, left of the real hop, proves nothing.
        (Some("192.0.2.66, 198.51.100.7"), "198.51.100.7"),
    ];
    for (xff, want) in cases {
        let me = whoami(&app, xff).await;
        assert_eq!(
            me.client_addr.as_deref(),
            Some(want),
            "X-Forwarded-For {xff:?}"
        );
    }
}
