//! Failed-login throttling on every door: `/service/token`, Basic on `/v2`
//! and `/api/v2.0`, and the console's `/c/login`. Clients are told apart by
//! `X-Forwarded-For` from a trusted proxy (the test client is that proxy).

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};

use crate::support::{Creds, PASSWORD, TestApp};

async fn app() -> TestApp {
    TestApp::builder()
        .config(|c| {
            c.trusted_proxies = vec!["127.0.0.1".into()];
            c.throttle.max_failures_per_user = 3;
            c.throttle.max_failures_per_address = 5;
            c.throttle.window_secs = 60;
            c.throttle.lockout_secs = 2;
        })
        .spawn()
        .await
}

fn from(req: RequestBuilder, addr: &str) -> RequestBuilder {
    req.header("X-Forwarded-For", addr)
}

async fn token(app: &TestApp, creds: &Creds, addr: &str) -> Response {
    from(app.http.get(app.url("/service/token")), addr)
        .query(&[
            ("service", "wharf-registry"),
            ("scope", "repository:library/app:pull"),
        ])
        .header("Authorization", creds.header())
        .send()
        .await
        .unwrap()
}

async fn basic(app: &TestApp, method: Method, path: &str, creds: &Creds, addr: &str) -> Response {
    from(app.http.request(method, app.url(path)), addr)
        .header("Authorization", creds.header())
        .send()
        .await
        .unwrap()
}

async fn console_login(app: &TestApp, creds: &Creds, addr: &str) -> Response {
    from(app.http.post(app.url("/c/login")), addr)
        .form(&[
            ("principal", creds.name.as_str()),
            ("password", creds.secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

fn retry_after(resp: &Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .expect("a 429 says when to retry")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_account_is_locked_after_repeated_bad_passwords() {
    let app = app().await;
    app.create_user("alice").await;
    let good = Creds::new("alice", PASSWORD);
    let bad = Creds::new("alice", "Wrong-passw0rd");
    let addr = "198.51.100.1";

    for attempt in 1..=3 {
        assert_eq!(
            token(&app, &bad, addr).await.status(),
            401,
            "bad attempt {attempt}"
        );
    }
    let locked = token(&app, &good, addr).await;
    assert_eq!(
        locked.status(),
        429,
        "even the right password is refused while locked"
    );
    let wait = retry_after(&locked);
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = locked.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOO_MANY_REQUEST");
    // The lock is on the account, wherever the login comes from.
    assert_eq!(token(&app, &good, "198.51.100.2").await.status(), 429);

    let audit = app.login_audit("alice").await;
    assert_eq!(audit.len(), 1, "one entry when the lock starts: {audit:?}");
    let (success, description, client) = &audit[0];
    assert!(!success);
    assert!(description.contains("throttled"), "{description}");
    assert_eq!(client.as_deref(), Some(addr));

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        token(&app, &good, addr).await.status(),
        200,
        "after the lockout"
    );
    // Success cleared the count: one more mistake does not lock again.
    assert_eq!(token(&app, &bad, addr).await.status(), 401);
    assert_eq!(token(&app, &good, addr).await.status(), 200);
}

#[tokio::test]
async fn basic_logins_on_v2_api_and_console_are_throttled_too() {
    let app = app().await;
    app.create_user("bob").await;
    let good = Creds::new("bob", PASSWORD);
    let bad = Creds::new("bob", "Wrong-passw0rd");
    let addr = "198.51.100.10";

    // Failures on different doors add up.
    assert_eq!(
        basic(&app, Method::GET, "/v2/", &bad, addr).await.status(),
        401
    );
    let api = basic(&app, Method::GET, "/api/v2.0/whoami", &bad, addr).await;
    assert_eq!(api.status(), 401);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(console_login(&app, &bad, addr).await.status(), 401);

    let v2 = basic(&app, Method::GET, "/v2/", &good, addr).await;
    assert_eq!(v2.status(), 429);
    assert!(retry_after(&v2) >= 1);
    let body: serde_json::Value = v2.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS");

    let api = basic(&app, Method::GET, "/api/v2.0/whoami", &good, addr).await;
    assert_eq!(api.status(), 429);
    assert!(retry_after(&api) >= 1);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "TOO_MANY_REQUEST");

    let console = console_login(&app, &good, addr).await;
    assert_eq!(console.status(), 429);
    assert!(console.headers().get("set-cookie").is_none());

    let post = from(app.http.post(app.url("/service/token")), addr)
        .form(&[
            ("grant_type", "password"),
            ("service", "wharf-registry"),
            ("username", "bob"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 429);
    assert!(retry_after(&post) >= 1);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        basic(&app, Method::GET, "/v2/", &good, addr).await.status(),
        200
    );
    let api = basic(&app, Method::GET, "/api/v2.0/whoami", &good, addr).await;
    assert_eq!(api.status(), 200);
}

#[tokio::test]
async fn an_address_guessing_many_accounts_is_locked() {
    let app = app().await;
    app.create_user("carol").await;
    let carol = Creds::new("carol", PASSWORD);
    let addr = "203.0.113.20";

    // Five names, one failure each: no account reaches its limit, the
    // address does.
    for n in 1..=5 {
        let guess = Creds::new(&format!("victim{n}"), "Guess-passw0rd");
        assert_eq!(token(&app, &guess, addr).await.status(), 401, "guess {n}");
    }
    let locked = token(&app, &carol, addr).await;
    assert_eq!(
        locked.status(),
        429,
        "a locked address refuses every account"
    );
    assert!(retry_after(&locked) >= 1);
    assert_eq!(
        token(&app, &carol, "203.0.113.21").await.status(),
        200,
        "other addresses are not affected"
    );
    let audit = app.login_audit("victim5").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].1.contains(addr), "{}", audit[0].1);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(token(&app, &carol, addr).await.status(), 200);
}
