//! Tokens that must not open the registry: forged, tampered, stale, aimed at
//! another service or project, or held by accounts that lost their access.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use wharf_projects::Role;

use crate::support::{Creds, PASSWORD, TestApp, challenge_of, claims};

const MANIFEST: &str = "/v2/library/app/manifests/v1";

async fn app() -> TestApp {
    TestApp::builder()
        .config(|c| c.subject_recheck_secs = 1)
        .spawn()
        .await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims our issuer would write for the admin pulling library/app.
fn good_claims() -> Value {
    let now = now();
    json!({
        "iss": "wharf-token-issuer",
        "sub": "admin",
        "aud": "wharf-registry",
        "exp": now + 600,
        "nbf": now,
        "iat": now,
        "jti": "test",
        "access": [{"type": "repository", "name": "library/app", "actions": ["pull"]}],
    })
}

async fn kid(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT kid FROM token_signing_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn real_key(app: &TestApp) -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(&app.key_path).unwrap()).unwrap()
}

fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// The request is refused with a challenge carrying `error`.
async fn assert_refused(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    error: &str,
    why: &str,
) {
    let resp = app.with_token(method, path, token).await;
    assert_eq!(resp.status(), 401, "{why}");
    let challenge = challenge_of(&resp);
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{why}: challenge {challenge}"
    );
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let app = app().await;
    app.push_image(Some(&app.admin_creds()), "library/app", "v1")
        .await
        .unwrap();
    let kid = kid(&app).await;
    let key = real_key(&app);

    // The forging kit works: properly signed good claims are accepted, and
    // so is an expiry within the 60 s leeway.
    let good = sign(Algorithm::ES256, &kid, &good_claims(), &key);
    assert_eq!(
        app.with_token(Method::GET, MANIFEST, &good).await.status(),
        200
    );
    let mut claims = good_claims();
    claims["exp"] = json!(now() - 30);
    let lenient = sign(Algorithm::ES256, &kid, &claims, &key);
    assert_eq!(
        app.with_token(Method::GET, MANIFEST, &lenient)
            .await
            .status(),
        200
    );

    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut claims = good_claims();
    claims["exp"] = json!(now() - 120);
    claims["iat"] = json!(now() - 2000);
    claims["nbf"] = json!(now() - 2000);
    cases.push(("expired", sign(Algorithm::ES256, &kid, &claims, &key)));
    let mut claims = good_claims();
    claims["nbf"] = json!(now() + 300);
    cases.push(("not yet valid", sign(Algorithm::ES256, &kid, &claims, &key)));
    let mut claims = good_claims();
    claims["aud"] = json!("someone-else");
    cases.push((
        "wrong audience",
        sign(Algorithm::ES256, &kid, &claims, &key),
    ));
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("aud");
    cases.push(("no audience", sign(Algorithm::ES256, &kid, &claims, &key)));
    let mut claims = good_claims();
    claims["iss"] = json!("evil-issuer");
    cases.push(("wrong issuer", sign(Algorithm::ES256, &kid, &claims, &key)));
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("exp");
    cases.push(("no expiry", sign(Algorithm::ES256, &kid, &claims, &key)));

    // alg none, with and without a signature part.
    let none = json!({"alg": "none", "typ": "JWT", "kid": kid});
    cases.push((
        "alg none",
        format!("{}.{}.", b64(&none), b64(&good_claims())),
    ));
    let none_signed = good.rsplit('.').next().unwrap();
    cases.push((
        "alg none with a signature",
        format!("{}.{}.{none_signed}", b64(&none), b64(&good_claims())),
    ));

    // HS256 keyed with the published public key (the classic confusion).
    let public_pem: String = sqlx::query_scalar("SELECT public_key FROM token_signing_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let hmac = EncodingKey::from_secret(public_pem.as_bytes()).unwrap();
    cases.push((
        "HS256 with the public key",
        sign(Algorithm::HS256, &kid, &good_claims(), &hmac),
    ));

    // A key of the attacker's own.
    let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .unwrap()
        .to_pkcs8v1()
        .unwrap();
    let other = EncodingKey::from_ec_der(pkcs8.as_ref());
    cases.push((
        "unknown kid",
        sign(Algorithm::ES256, "attacker-key", &good_claims(), &other),
    ));
    cases.push((
        "known kid, other key",
        sign(Algorithm::ES256, &kid, &good_claims(), &other),
    ));
    let mut header = Header::new(Algorithm::ES256);
    header.kid = None;
    cases.push((
        "no kid",
        jsonwebtoken::encode(&header, &good_claims(), &key).unwrap(),
    ));
    cases.push(("garbage", "not.a.token".into()));

    for (why, token) in &cases {
        assert_refused(&app, Method::GET, MANIFEST, token, "invalid_token", why).await;
    }
}

#[tokio::test]
async fn tampered_and_misdirected_tokens_are_refused() {
    let app = app().await;
    let admin = app.admin_creds();
    let private = app.create_project("priv", false).await;
    app.create_project("other", true).await;
    app.push_image(Some(&admin), "priv/app", "v1")
        .await
        .unwrap();
    app.push_image(Some(&admin), "other/app", "v1")
        .await
        .unwrap();
    let guest = app.create_user("guest").await;
    app.add_member(&private, &guest, Role::Guest).await;
    let guest = Creds::new("guest", PASSWORD);

    // A guest asks for push and gets pull only.
    let token = app
        .token(Some(&guest), &["repository:priv/app:pull,push"])
        .await;
    assert_eq!(
        app.with_token(Method::GET, "/v2/priv/app/manifests/v1", &token)
            .await
            .status(),
        200
    );
    let upload = "/v2/priv/app/blobs/uploads/";
    assert_refused(
        &app,
        Method::POST,
        upload,
        &token,
        "insufficient_scope",
        "guest push",
    )
    .await;
    let resp = app.with_token(Method::POST, upload, &token).await;
    assert!(challenge_of(&resp).contains("scope=\"repository:priv/app:pull,push\""));

    // Writing push into the payload breaks the signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut escalated = claims(&token);
    escalated["access"] =
        json!([{"type": "repository", "name": "priv/app", "actions": ["pull", "push", "delete"]}]);
    parts[1] = b64(&escalated);
    let tampered = parts.join(".");
    assert_refused(
        &app,
        Method::POST,
        upload,
        &tampered,
        "invalid_token",
        "escalated claim",
    )
    .await;

    // A token for one project does not open another, nor another repository.
    let admin_token = app.token(Some(&admin), &["repository:priv/app:pull"]).await;
    assert_refused(
        &app,
        Method::GET,
        "/v2/other/app/manifests/v1",
        &admin_token,
        "insufficient_scope",
        "token for priv used on other",
    )
    .await;
    assert_refused(
        &app,
        Method::GET,
        "/v2/priv/app2/manifests/v1",
        &admin_token,
        "insufficient_scope",
        "token for priv/app used on priv/app2",
    )
    .await;

    // A project deleted and made again under the same name does not honour
    // tokens issued before it existed.
    let temp = app.create_project("temp", false).await;
    let before = app.token(Some(&admin), &["repository:temp/app:pull"]).await;
    let status = app
        .with_token(Method::GET, "/v2/temp/app/manifests/v1", &before)
        .await
        .status();
    assert_eq!(status, 404, "the token works while the project lives");
    wharf_projects::delete_project(&app.pool, temp.id)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    app.create_project("temp", false).await;
    assert_refused(
        &app,
        Method::GET,
        "/v2/temp/app/manifests/v1",
        &before,
        "invalid_token",
        "token older than the project",
    )
    .await;
}

#[tokio::test]
async fn disabled_expired_and_deleted_accounts_lose_access() {
    let app = app().await;
    let project = app.create_project("ci", false).await;
    app.push_image(Some(&app.admin_creds()), "ci/app", "v1")
        .await
        .unwrap();
    let scope = "repository:ci/app:pull";
    let path = "/v2/ci/app/manifests/v1";

    for (name, breakage) in [
        (
            "disabled",
            "UPDATE robots SET disabled = true WHERE name = $1",
        ),
        (
            "expired",
            "UPDATE robots SET expires_at = now() - interval '1 minute' WHERE name = $1",
        ),
        ("deleted", "DELETE FROM robots WHERE name = $1"),
    ] {
        let robot = app.create_robot("ci", name, &["pull"]).await;
        let token = app.token(Some(&robot), &[scope]).await;
        assert_eq!(
            app.with_token(Method::GET, path, &token).await.status(),
            200
        );
        assert_eq!(
            app.with_basic(Method::GET, path, &robot).await.status(),
            200
        );

        sqlx::query(breakage)
            .bind(format!("ci+{name}"))
            .execute(&app.pool)
            .await
            .unwrap();
        let refused = app.token_response(Some(&robot), &[scope]).await;
        assert_eq!(refused.status(), 401, "{name} robot at /service/token");
        let basic = app.with_basic(Method::GET, path, &robot).await;
        assert_eq!(basic.status(), 401, "{name} robot with Basic on /v2");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_refused(&app, Method::GET, path, &token, "invalid_token", name).await;
    }

    let user = app.create_user("leaver").await;
    app.add_member(&project, &user, Role::Developer).await;
    let creds = Creds::new("leaver", PASSWORD);
    let token = app.token(Some(&creds), &[scope]).await;
    assert_eq!(
        app.with_token(Method::GET, path, &token).await.status(),
        200
    );
    wharf_projects::delete_user(&app.pool, user.id)
        .await
        .unwrap();
    let refused = app.token_response(Some(&creds), &[scope]).await;
    assert_eq!(refused.status(), 401, "deleted user at /service/token");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_refused(
        &app,
        Method::GET,
        path,
        &token,
        "invalid_token",
        "deleted user",
    )
    .await;
}
