//! Harbor's permission matrix, end to end: for every kind of principal on a
//! private and a public project, the `access` claim of a real token and the
//! real `/v2` outcome of pull, push, delete and the catalog. Expectations come
//! from `wharf_projects::rbac::allowed` over Harbor's role table, not from a
//! copy written here.

use reqwest::Method;
use wharf_projects::Role;
use wharf_projects::rbac::allowed;

use crate::support::{Creds, TestApp, granted};

#[derive(Debug, Clone)]
enum Who {
    Member(Role),
    NonMember,
    Anonymous,
    SystemAdmin,
    /// A robot of `project` granted `repository:<action>` for each action.
    Robot {
        project: &'static str,
        actions: &'static [&'static str],
    },
}

const ACTIONS: [&str; 3] = ["pull", "push", "delete"];

struct Case {
    who: Who,
    creds: Option<Creds>,
}

/// What `who` may do with repositories of `project`, per the role table.
fn expected(who: &Who, project: &str, public: bool, action: &str) -> bool {
    match who {
        Who::Member(role) => allowed(&[*role], false, public, "repository", action),
        Who::NonMember | Who::Anonymous => allowed(&[], false, public, "repository", action),
        Who::SystemAdmin => allowed(&[], true, public, "repository", action),
        Who::Robot {
            project: own,
            actions,
        } => {
            let granted_here = *own == project
                && (actions.contains(&action) || (action == "pull" && actions.contains(&"push")));
            granted_here || allowed(&[], false, public, "repository", action)
        }
    }
}

/// Whether `who` may know the project exists (Basic requests on `/v2` get
/// "name unknown" otherwise).
fn visible(who: &Who, project: &str, public: bool) -> bool {
    let sees = match who {
        Who::Member(role) => allowed(&[*role], false, public, "", "read"),
        Who::SystemAdmin => true,
        _ => allowed(&[], false, public, "", "read"),
    };
    sees || expected(who, project, public, "pull")
}

async fn cases(app: &TestApp) -> Vec<Case> {
    let projects = [
        app.create_project("priv", false).await,
        app.create_project("pub", true).await,
    ];
    let mut cases = Vec::new();
    for role in Role::ALL {
        let user = app
            .create_user(&format!("role-{}", role.name().to_lowercase()))
            .await;
        for project in &projects {
            app.add_member(project, &user, role).await;
        }
        cases.push(Case {
            who: Who::Member(role),
            creds: Some(Creds::new(&user.username, crate::support::PASSWORD)),
        });
    }
    let outsider = app.create_user("outsider").await;
    cases.push(Case {
        who: Who::NonMember,
        creds: Some(Creds::new(&outsider.username, crate::support::PASSWORD)),
    });
    cases.push(Case {
        who: Who::Anonymous,
        creds: None,
    });
    cases.push(Case {
        who: Who::SystemAdmin,
        creds: Some(app.admin_creds()),
    });
    for project in ["priv", "pub"] {
        for (name, actions) in [("puller", &["pull"][..]), ("pusher", &["push"][..])] {
            let creds = app.create_robot(project, name, actions).await;
            cases.push(Case {
                who: Who::Robot { project, actions },
                creds: Some(creds),
            });
        }
    }
    cases
}

#[tokio::test]
async fn tokens_and_registry_follow_harbors_matrix() {
    let app = TestApp::spawn().await;
    let cases = cases(&app).await;
    let admin = app.admin_creds();
    let mut checked = 0;
    let mut allowed_somewhere = [0usize; 3];
    for (project, public) in [("priv", false), ("pub", true)] {
        app.push_image(Some(&admin), &format!("{project}/app"), "v1")
            .await
            .expect("the admin seeds the project");
        for (i, case) in cases.iter().enumerate() {
            let who = &case.who;
            let creds = case.creds.as_ref();
            let ctx = format!("{who:?} on {project}");
            let want: Vec<&str> = ACTIONS
                .into_iter()
                .filter(|a| expected(who, project, public, a))
                .collect();
            for (n, a) in ACTIONS.iter().enumerate() {
                if want.contains(a) {
                    allowed_somewhere[n] += 1;
                }
            }

            // The token carries exactly what RBAC grants.
            let repo = format!("{project}/app");
            let scope = format!("repository:{repo}:pull,push,delete");
            let token = app.token(creds, &[&scope]).await;
            assert_eq!(
                granted(&token, "repository", &repo),
                want,
                "{ctx}: access claim"
            );
            let star = app.token(creds, &[&format!("repository:{repo}:*")]).await;
            assert_eq!(
                granted(&star, "repository", &repo),
                want,
                "{ctx}: `*` scope"
            );

            // And the registry honours it, through the token dance.
            let pull = app.pull_status(creds, &repo, "v1").await;
            assert_eq!(
                pull == 200,
                want.contains(&"pull"),
                "{ctx}: pull gave {pull}"
            );
            if !want.contains(&"pull") {
                assert_eq!(pull, 401, "{ctx}: refused pulls are 401");
            }

            let pushed = app
                .push_image(creds, &format!("{project}/push-{i}"), "v1")
                .await;
            assert_eq!(
                pushed.is_ok(),
                want.contains(&"push"),
                "{ctx}: push gave {pushed:?}"
            );
            if let Err(status) = pushed {
                assert_eq!(status, 401, "{ctx}: refused pushes are 401");
            }

            let victim = format!("{project}/del-{i}");
            let digest = app.push_image(Some(&admin), &victim, "v1").await.unwrap();
            let deleted = app
                .v2(
                    creds,
                    Method::DELETE,
                    &format!("/v2/{victim}/manifests/{digest}"),
                    None,
                    None,
                )
                .await
                .status()
                .as_u16();
            assert_eq!(
                deleted == 202,
                want.contains(&"delete"),
                "{ctx}: delete gave {deleted}"
            );
            let still_there = app.pull_status(Some(&admin), &victim, "v1").await;
            assert_eq!(
                still_there == 200,
                !want.contains(&"delete"),
                "{ctx}: after delete"
            );

            // The catalog is for system administrators only.
            let catalog_token = app.token(creds, &["registry:catalog:*"]).await;
            let is_admin = matches!(who, Who::SystemAdmin);
            let expect_catalog: Vec<String> = if is_admin { vec!["*".into()] } else { vec![] };
            assert_eq!(
                granted(&catalog_token, "registry", "catalog"),
                expect_catalog,
                "{ctx}: catalog claim"
            );
            let catalog = app
                .v2(creds, Method::GET, "/v2/_catalog", None, None)
                .await
                .status()
                .as_u16();
            assert_eq!(catalog == 200, is_admin, "{ctx}: catalog gave {catalog}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 12);
    // The matrix is not degenerate: each action is both granted and refused.
    for (n, count) in allowed_somewhere.into_iter().enumerate() {
        assert!(
            count > 0 && count < checked,
            "{}: granted {count} times",
            ACTIONS[n]
        );
    }
}

#[tokio::test]
async fn basic_credentials_on_v2_are_decided_by_rbac() {
    let app = TestApp::spawn().await;
    let cases = cases(&app).await;
    let admin = app.admin_creds();
    for (project, public) in [("priv", false), ("pub", true)] {
        let repo = format!("{project}/app");
        let digest = app.push_image(Some(&admin), &repo, "v1").await.unwrap();
        for case in &cases {
            let Some(creds) = case.creds.as_ref() else {
                continue;
            };
            let who = &case.who;
            let ctx = format!("{who:?} on {project} with Basic");
            let refusal = |action: &str| -> u16 {
                if visible(who, project, public) {
                    assert!(!expected(who, project, public, action));
                    403
                } else {
                    404
                }
            };
            let pull = app
                .with_basic(Method::GET, &format!("/v2/{repo}/manifests/v1"), creds)
                .await;
            let want = if expected(who, project, public, "pull") {
                200
            } else {
                refusal("pull")
            };
            assert_eq!(pull.status(), want, "{ctx}: pull");
            if want != 200 {
                let body: serde_json::Value = pull.json().await.unwrap();
                let code = if want == 404 {
                    "NAME_UNKNOWN"
                } else {
                    "DENIED"
                };
                assert_eq!(body["errors"][0]["code"], code, "{ctx}");
            }

            let upload = app
                .with_basic(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), creds)
                .await;
            let want = if expected(who, project, public, "push") {
                202
            } else {
                refusal("push")
            };
            assert_eq!(upload.status(), want, "{ctx}: upload start");

            // A delete of a manifest that is not there: allowed callers reach
            // the registry (404 MANIFEST_UNKNOWN), others are refused first.
            let missing = format!("sha256:{}", "0".repeat(64));
            assert_ne!(missing, digest);
            let delete = app
                .with_basic(
                    Method::DELETE,
                    &format!("/v2/{repo}/manifests/{missing}"),
                    creds,
                )
                .await;
            let status = delete.status().as_u16();
            let body: serde_json::Value = delete.json().await.unwrap();
            if expected(who, project, public, "delete") {
                assert_eq!(status, 404, "{ctx}: delete");
                assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN", "{ctx}");
            } else {
                assert_eq!(status, refusal("delete"), "{ctx}: delete");
            }
        }
    }
    let catalog = app.with_basic(Method::GET, "/v2/_catalog", &admin).await;
    assert_eq!(catalog.status(), 200);
    let guest = Creds::new("role-guest", crate::support::PASSWORD);
    let catalog = app.with_basic(Method::GET, "/v2/_catalog", &guest).await;
    assert_eq!(catalog.status(), 403);
}
