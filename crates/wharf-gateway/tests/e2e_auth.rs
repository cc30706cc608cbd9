//! Authentication end to end, the way people use it: skopeo logging in as a
//! user and as a robot account made through the REST API, anonymous pulls
//! from public and private projects, and the API documentation served
//! offline. Wharf only: the reference registry has no accounts.

mod support;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, E2E_ADMIN, Flavor, Oci, Rng, Server, run, tool};

struct Skopeo {
    bin: std::path::PathBuf,
    policy: std::path::PathBuf,
}

impl Skopeo {
    fn new(dir: &Path) -> Option<Skopeo> {
        let policy = dir.join("policy.json");
        std::fs::write(
            &policy,
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .ok()?;
        Some(Skopeo {
            bin: tool("skopeo")?,
            policy,
        })
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--policy").arg(&self.policy);
        cmd
    }

    /// Copy an OCI layout into the registry with `creds` (`user:secret`).
    fn push(&self, layout: &Path, to: &str, creds: &str) -> anyhow::Result<Vec<u8>> {
        run(self
            .cmd()
            .args(["copy", "--retry-times", "0", "--dest-tls-verify=false"])
            .args(["--dest-creds", creds])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{to}")))
    }

    /// `skopeo inspect --raw`, with `creds` or anonymously.
    fn inspect(&self, image: &str, creds: Option<&str>) -> anyhow::Result<Vec<u8>> {
        let mut cmd = self.cmd();
        cmd.args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--retry-times",
            "0",
        ]);
        match creds {
            Some(creds) => cmd.args(["--creds", creds]),
            None => cmd.arg("--no-creds"),
        };
        run(cmd.arg(format!("docker://{image}")))
    }
}

/// Administrator calls to the REST API.
struct Api<'a> {
    server: &'a Server,
    http: reqwest::Client,
}

impl Api<'_> {
    fn new(server: &Server) -> Api<'_> {
        Api {
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/api/v2.0{path}", self.server.base))
            .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn create_user(&self, name: &str, password: &str) -> i64 {
        self.post(
            "/users",
            json!({ "username": name, "password": password, "email": format!("{name}@example.com"), "realname": name }),
        )
        .await;
        let users: Value = self
            .http
            .get(format!(
                "{}/api/v2.0/users/search?username={name}",
                self.server.base
            ))
            .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        users
            .as_array()
            .and_then(|a| a.iter().find(|u| u["username"] == name))
            .and_then(|u| u["user_id"].as_i64())
            .expect("created user is found")
    }

    async fn add_member(&self, project: &str, user_id: i64, role_id: i64) {
        self.post(
            &format!("/projects/{project}/members"),
            json!({ "role_id": role_id, "member_user": { "user_id": user_id } }),
        )
        .await;
    }
}

/// An image in an OCI layout under `dir`, ready for `skopeo copy oci:`.
fn layout(dir: &Path, name: &str) -> std::path::PathBuf {
    let mut rng = Rng::new();
    let image = support::random_image(&mut rng, 2, 64 * 1024, "amd64");
    let path = dir.join(name);
    support::write_oci_layout(&path, "v1", &image.manifest, image.blobs()).unwrap();
    path
}

async fn wharf() -> Option<(Backend, Server)> {
    let backend = Backend::new().await;
    if backend.flavor == Flavor::Reference {
        eprintln!("SKIPPED: accounts are Wharf's, the reference registry has none");
        return None;
    }
    let server = backend.start().await;
    Some((backend, server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_with_skopeo_and_pushes_to_their_project() {
    let work = tempfile::tempdir().unwrap();
    let Some(skopeo) = Skopeo::new(work.path()) else {
        return;
    };
    let Some((_backend, server)) = wharf().await else {
        return;
    };
    let api = Api::new(&server);
    server.create_project("team", false).await.unwrap();
    let dev = api.create_user("dana", "Dana-pass-1").await;
    api.add_member("team", dev, 2).await; // developer
    let guest = api.create_user("gus", "Gus-pass-1").await;
    api.add_member("team", guest, 3).await;
    let image = layout(work.path(), "img");

    let target = format!("{}/team/app:v1", server.host());
    skopeo
        .push(&image, &target, "dana:Dana-pass-1")
        .expect("a developer pushes");
    skopeo
        .inspect(&target, Some("gus:Gus-pass-1"))
        .expect("a guest pulls");
    let refused = skopeo
        .push(
            &image,
            &format!("{}/team/other:v1", server.host()),
            "gus:Gus-pass-1",
        )
        .expect_err("a guest may not push");
    let text = format!("{refused:#}");
    assert!(
        text.contains("unauthorized") || text.contains("denied") || text.contains("insufficient"),
        "{text}"
    );
    skopeo
        .push(&image, &target, "dana:wrong-password")
        .expect_err("a wrong password is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_robot_made_through_the_api_pushes_to_its_project_and_nowhere_else() {
    let work = tempfile::tempdir().unwrap();
    let Some(skopeo) = Skopeo::new(work.path()) else {
        return;
    };
    let Some((_backend, server)) = wharf().await else {
        return;
    };
    let api = Api::new(&server);
    server.create_project("alpha", false).await.unwrap();
    server.create_project("beta", false).await.unwrap();
    let robot = api
        .post(
            "/robots",
            json!({
                "name": "ci",
                "description": "pushes from CI",
                "level": "project",
                "duration": -1,
                "permissions": [{
                    "kind": "project",
                    "namespace": "alpha",
                    "access": [
                        { "resource": "repository", "action": "push" },
                        { "resource": "repository", "action": "pull" }
                    ]
                }]
            }),
        )
        .await;
    let name = robot["name"].as_str().expect("robot name").to_owned();
    assert_eq!(name, "robot$alpha+ci");
    let secret = robot["secret"].as_str().expect("secret shown once");
    let creds = format!("{name}:{secret}");
    let image = layout(work.path(), "img");

    skopeo
        .push(
            &image,
            &format!("{}/alpha/service:v1", server.host()),
            &creds,
        )
        .expect("the robot pushes to its project");
    let pulled = skopeo
        .inspect(&format!("{}/alpha/service:v1", server.host()), Some(&creds))
        .expect("and pulls from it");
    assert!(!pulled.is_empty());
    skopeo
        .push(
            &image,
            &format!("{}/beta/service:v1", server.host()),
            &creds,
        )
        .expect_err("the robot of alpha cannot push to beta");
    skopeo
        .inspect(&format!("{}/beta/service:v1", server.host()), Some(&creds))
        .expect_err("nor read it");
    skopeo
        .push(
            &image,
            &format!("{}/library/service:v1", server.host()),
            &creds,
        )
        .expect_err("nor push to the public library project");

    // The push is in the audit log under the robot's name.
    let logs: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v2.0/audit-logs?q=operation=create,resource_type=artifact",
            server.base
        ))
        .basic_auth(E2E_ADMIN.0, Some(E2E_ADMIN.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["username"] == name && l["resource"] == "alpha/service:v1"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_pulls_work_on_public_projects_only() {
    let work = tempfile::tempdir().unwrap();
    let Some(skopeo) = Skopeo::new(work.path()) else {
        return;
    };
    let Some((_backend, server)) = wharf().await else {
        return;
    };
    server.create_project("secret", false).await.unwrap();
    let image = layout(work.path(), "img");
    let admin = format!("{}:{}", E2E_ADMIN.0, E2E_ADMIN.1);
    let public = format!("{}/library/open:v1", server.host());
    let private = format!("{}/secret/closed:v1", server.host());
    skopeo.push(&image, &public, &admin).unwrap();
    skopeo.push(&image, &private, &admin).unwrap();

    skopeo
        .inspect(&public, None)
        .expect("anonymous pull from a public project");
    let refused = skopeo
        .inspect(&private, None)
        .expect_err("anonymous pull from a private project");
    let text = format!("{refused:#}");
    assert!(
        text.contains("unauthorized") || text.contains("insufficient"),
        "{text}"
    );
    skopeo
        .push(
            &image,
            &format!("{}/library/anon:v1", server.host()),
            "nobody:x",
        )
        .expect_err("unknown credentials push nothing");

    // Raw protocol: no credentials at all is a 401 with a Bearer challenge
    // naming the scope, even for the public project.
    let resp = reqwest::Client::new()
        .get(format!("{}/v2/library/open/manifests/v1", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let params = support::challenge_params(&challenge);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert_eq!(
        params.get("realm").map(String::as_str),
        Some(format!("{}/service/token", server.base).as_str())
    );
    assert_eq!(
        params.get("scope").map(String::as_str),
        Some("repository:library/open:pull")
    );
    // An anonymous token reads the public project and not the private one.
    let oci = Oci::anonymous();
    assert_eq!(
        oci.get_manifest(&server.base, "library/open", "v1")
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    assert_eq!(
        oci.get_manifest(&server.base, "secret/closed", "v1")
            .await
            .unwrap()
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_validates_and_swagger_ui_is_served_offline() {
    let Some((_backend, server)) = wharf().await else {
        return;
    };
    let http = reqwest::Client::new();
    let doc = http
        .get(format!("{}/api/v2.0/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), StatusCode::OK);
    let text = doc.text().await.unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert!(parsed["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/users",
        "/projects",
        "/robots",
        "/audit-logs",
        "/systeminfo",
    ] {
        assert!(
            parsed["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
    // A real validator, when installed (CI installs openapi-spec-validator).
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let python_has_validator = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    if python_has_validator {
        run(Command::new("python3")
            .args(["-m", "openapi_spec_validator"])
            .arg(file.path()))
        .expect("the OpenAPI document validates");
    } else {
        assert!(
            !support::in_ci(),
            "openapi-spec-validator is not installed, and CI requires it (.ci/run installs it)"
        );
        eprintln!("SKIPPED: openapi-spec-validator is not installed");
    }

    // Swagger UI: the page and every asset it loads come from Wharf itself.
    let page = http
        .get(format!("{}/devcenter", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let assets: Vec<String> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .map(str::to_owned)
        .collect();
    assert!(!assets.is_empty(), "{html}");
    for asset in assets {
        assert!(
            !asset.starts_with("http"),
            "{asset} would be fetched from the internet"
        );
        let url = if asset.starts_with('/') {
            format!("{}{asset}", server.base)
        } else {
            format!(
                "{}/devcenter/{}",
                server.base,
                asset.trim_start_matches("./")
            )
        };
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
    }
}
