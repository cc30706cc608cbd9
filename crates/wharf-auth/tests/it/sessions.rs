//! Console sessions on the API: the `sid` cookie, CSRF on unsafe methods,
//! sign-out, and what a bad or missing cookie means.

use reqwest::{Method, Response};

use crate::support::{Creds, PASSWORD, TestApp, WhoAmI};

async fn login(app: &TestApp, principal: &str, password: &str) -> Response {
    app.http
        .post(app.url("/c/login"))
        .form(&[("principal", principal), ("password", password)])
        .send()
        .await
        .unwrap()
}

fn set_cookie(resp: &Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sid="))
        .expect("a sid cookie is set")
}

/// `sid=<value>` from a `Set-Cookie`.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn whoami(app: &TestApp, method: Method, cookie: &str, csrf: Option<&str>) -> Response {
    let mut req = app
        .http
        .request(method, app.url("/api/v2.0/whoami"))
        .header("Cookie", cookie);
    if let Some(csrf) = csrf {
        req = req.header("X-Harbor-CSRF-Token", csrf);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_console_session_signs_api_requests_with_csrf_protection() {
    let app = TestApp::spawn().await;
    app.create_user("alice").await;

    let refused = login(&app, "alice", "Wrong-passw0rd").await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());
    let robot_login = login(&app, "robot$library+ci", "whatever").await;
    assert_eq!(robot_login.status(), 401);

    let resp = login(&app, "alice", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let cookie = set_cookie(&resp);
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let csrf = resp.headers()["x-harbor-csrf-token"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csrf.len() >= 32);
    let sid = cookie_pair(&cookie);
    let id = sid.trim_start_matches("sid=");
    assert!(id.len() >= 32);

    // Only a hash of the id is stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_ne!(stored, id.as_bytes());
    assert_eq!(stored.len(), 32);

    let resp = whoami(&app, Method::GET, &sid, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-harbor-csrf-token"], csrf.as_str());
    let me: WhoAmI = resp.json().await.unwrap();
    assert_eq!(
        (me.kind.as_str(), me.name.as_deref()),
        ("user", Some("alice"))
    );

    for method in [Method::POST, Method::DELETE] {
        let resp = whoami(&app, method.clone(), &sid, None).await;
        assert_eq!(resp.status(), 403, "{method} without CSRF token");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "FORBIDDEN");
        assert_eq!(body["errors"][0]["message"], "CSRF token invalid");
        let wrong = whoami(&app, method.clone(), &sid, Some("not-the-token")).await;
        assert_eq!(wrong.status(), 403, "{method} with a wrong CSRF token");
        let right = whoami(&app, method.clone(), &sid, Some(&csrf)).await;
        assert_eq!(right.status(), 200, "{method} with the CSRF token");
        let me: WhoAmI = right.json().await.unwrap();
        assert_eq!(me.name.as_deref(), Some("alice"));
    }

    // Basic clients never need a CSRF token, cookie or not.
    let basic = app
        .http
        .post(app.url("/api/v2.0/whoami"))
        .header(
            "Authorization",
            Creds::new("admin", crate::support::ADMIN_PASSWORD).header(),
        )
        .header("Cookie", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let me: WhoAmI = basic.json().await.unwrap();
    assert_eq!(me.name.as_deref(), Some("admin"));

    // A cookie nobody issued is just anonymous, safe method or not.
    let me: WhoAmI = whoami(&app, Method::GET, "sid=forged", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me.kind, "anonymous");
    let resp = whoami(&app, Method::POST, "sid=forged", None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-harbor-csrf-token").is_none());

    // Sign-out ends the session and removes the cookie.
    let out = app
        .http
        .get(app.url("/c/log_out"))
        .header("Cookie", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let removal = set_cookie(&out);
    assert!(removal.contains("Max-Age=0"), "{removal}");
    let me: WhoAmI = whoami(&app, Method::GET, &sid, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me.kind, "anonymous");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_with_their_user() {
    let app = TestApp::builder()
        .config(|c| c.session_lifetime_secs = 2)
        .external_url("https://wharf.example.com")
        .spawn()
        .await;
    let user = app.create_user("bob").await;
    let resp = login(&app, "bob", PASSWORD).await;
    let cookie = set_cookie(&resp);
    assert!(cookie.contains("Secure"), "https external URL: {cookie}");
    assert!(cookie.contains("Max-Age=2"), "{cookie}");
    let sid = cookie_pair(&cookie);
    let me: WhoAmI = whoami(&app, Method::GET, &sid, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me.kind, "user");

    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let me: WhoAmI = whoami(&app, Method::GET, &sid, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me.kind, "anonymous", "an idle session expires");

    // A cross-site sign-in form is refused.
    let cross = app
        .http
        .post(app.url("/c/login"))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("principal", "bob"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);

    let resp = login(&app, "bob", PASSWORD).await;
    let sid = cookie_pair(&set_cookie(&resp));
    wharf_projects::delete_user(&app.pool, user.id)
        .await
        .unwrap();
    let me: WhoAmI = whoami(&app, Method::GET, &sid, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me.kind, "anonymous", "a deleted user's session is gone");
}
