//! `/systeminfo`, and the OpenAPI document of the whole API: valid, and
//! covering Harbor's operations for the resources this crate serves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::api_robots::{admin_robot, system_robot, user};
use crate::api_support::{ApiApp, json_body};

async fn system_info(app: &ApiApp, who: Option<(&str, &str)>) -> Value {
    let mut rb = app.client.get(app.url("/systeminfo"));
    if let Some((name, secret)) = who {
        rb = app.as_basic(rb, name, secret);
    }
    let resp = rb.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    json_body(resp).await
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[tokio::test]
async fn systeminfo_tells_anonymous_callers_only_what_sign_in_needs() {
    let app = ApiApp::spawn().await;
    let anonymous = system_info(&app, None).await;
    assert_eq!(
        anonymous,
        serde_json::json!({
            "auth_mode": "db_auth",
            "primary_auth_mode": false,
            "self_registration": false,
            "harbor_version": "v2.16.0-wharf-test",
        })
    );

    let (_, password) = user(&app, "reader").await;
    let (_, robot, secret) =
        admin_robot(&app, system_robot("probe", &[("project", "list")], "", &[])).await;
    let admin_pw = app.admin_password.clone();
    for who in [
        ("admin", admin_pw.as_str()),
        ("reader", &password),
        (&robot, &secret),
    ] {
        let info = system_info(&app, Some(who)).await;
        assert_eq!(
            keys(&info),
            BTreeSet::from([
                "auth_mode",
                "current_time",
                "external_url",
                "harbor_version",
                "has_ca_root",
                "notification_enable",
                "primary_auth_mode",
                "project_creation_restriction",
                "read_only",
                "registry_storage_provider_name",
                "registry_url",
                "self_registration",
            ]),
            "{who:?}"
        );
        assert_eq!(info["project_creation_restriction"], "everyone");
        assert_eq!(info["registry_storage_provider_name"], "filesystem");
        assert_eq!(info["harbor_version"], "v2.16.0-wharf-test");
        // The test server has no external URL configured.
        assert_eq!(info["external_url"], "");
        assert_eq!(info["registry_url"], "");
        assert_eq!(info["read_only"], false);
        let now = chrono::DateTime::parse_from_rfc3339(info["current_time"].as_str().unwrap())
            .expect("current_time is RFC 3339");
        assert!((chrono::Utc::now() - now.to_utc()).num_seconds().abs() < 60);
    }
}

/// The operations of Harbor's swagger this crate serves, as
/// (method, path relative to `/api/v2.0`, operationId). Left out on
/// purpose: `setCliSecret` (OIDC only) and the artifact, scanner and
/// volume operations that other crates serve.
const HARBOR_OPERATIONS: &[(&str, &str, &str)] = &[
    ("get", "/users", "listUsers"),
    ("post", "/users", "createUser"),
    ("get", "/users/current", "getCurrentUserInfo"),
    (
        "get",
        "/users/current/permissions",
        "getCurrentUserPermissions",
    ),
    ("get", "/users/search", "searchUsers"),
    ("get", "/users/{user_id}", "getUser"),
    ("put", "/users/{user_id}", "updateUserProfile"),
    ("delete", "/users/{user_id}", "deleteUser"),
    ("put", "/users/{user_id}/sysadmin", "setUserSysAdmin"),
    ("put", "/users/{user_id}/password", "updateUserPassword"),
    ("get", "/projects", "listProjects"),
    ("head", "/projects", "headProject"),
    ("post", "/projects", "createProject"),
    ("get", "/projects/{project_name_or_id}", "getProject"),
    ("put", "/projects/{project_name_or_id}", "updateProject"),
    ("delete", "/projects/{project_name_or_id}", "deleteProject"),
    (
        "get",
        "/projects/{project_name_or_id}/_deletable",
        "getProjectDeletable",
    ),
    (
        "get",
        "/projects/{project_name_or_id}/summary",
        "getProjectSummary",
    ),
    (
        "get",
        "/projects/{project_name_or_id}/members",
        "listProjectMembers",
    ),
    (
        "post",
        "/projects/{project_name_or_id}/members",
        "createProjectMember",
    ),
    (
        "get",
        "/projects/{project_name_or_id}/members/{mid}",
        "getProjectMember",
    ),
    (
        "put",
        "/projects/{project_name_or_id}/members/{mid}",
        "updateProjectMember",
    ),
    (
        "delete",
        "/projects/{project_name_or_id}/members/{mid}",
        "deleteProjectMember",
    ),
    (
        "get",
        "/projects/{project_name_or_id}/metadatas/",
        "listProjectMetadatas",
    ),
    (
        "post",
        "/projects/{project_name_or_id}/metadatas/",
        "addProjectMetadatas",
    ),
    (
        "get",
        "/projects/{project_name_or_id}/metadatas/{meta_name}",
        "getProjectMetadata",
    ),
    (
        "put",
        "/projects/{project_name_or_id}/metadatas/{meta_name}",
        "updateProjectMetadata",
    ),
    (
        "delete",
        "/projects/{project_name_or_id}/metadatas/{meta_name}",
        "deleteProjectMetadata",
    ),
    ("get", "/robots", "ListRobot"),
    ("post", "/robots", "CreateRobot"),
    ("get", "/robots/{robot_id}", "GetRobotByID"),
    ("put", "/robots/{robot_id}", "UpdateRobot"),
    ("patch", "/robots/{robot_id}", "RefreshSec"),
    ("delete", "/robots/{robot_id}", "DeleteRobot"),
    ("get", "/audit-logs", "listAuditLogs"),
    ("get", "/projects/{project_name}/logs", "getLogs"),
    (
        "get",
        "/projects/{project_name}/auditlog-exts",
        "getLogExts",
    ),
    ("get", "/systeminfo", "getSystemInfo"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (method, path) → operationId of every operation in Harbor's swagger,
/// read with a line parser that knows the file's layout (paths at two
/// spaces, methods at four, `operationId` at six).
fn harbor_swagger_operations(text: &str) -> BTreeMap<(String, String), String> {
    let mut ops = BTreeMap::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    let mut method: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            path = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ")
            && !rest.starts_with(' ')
        {
            path = rest
                .trim_end()
                .strip_suffix(':')
                .map(|p| p.trim_matches(|c| c == '\'' || c == '"').to_owned());
            method = None;
        } else if let Some(rest) = line.strip_prefix("    ")
            && !rest.starts_with(' ')
        {
            method = rest
                .trim_end()
                .strip_suffix(':')
                .filter(|m| METHODS.contains(m))
                .map(str::to_owned);
        } else if let Some(id) = line.strip_prefix("      operationId:")
            && let (Some(p), Some(m)) = (&path, &method)
        {
            ops.insert((m.clone(), p.clone()), id.trim().to_owned());
        }
    }
    ops
}

fn document() -> Value {
    serde_json::to_value(wharf_projects::http::openapi()).expect("the document serialises")
}

/// The value at a local JSON reference (`#/components/schemas/Robot`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push(v.as_str().expect("$ref is a string"));
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn openapi_document_is_valid_openapi_3() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3."), "openapi {version}");
    assert_eq!(doc["info"]["title"], "Wharf API");
    assert!(!doc["info"]["version"].as_str().unwrap().is_empty());
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("Harbor")
    );
    assert_eq!(doc["servers"][0]["url"], "/api/v2.0");
    assert_eq!(doc["servers"].as_array().unwrap().len(), 1);
    let basic = &doc["components"]["securitySchemes"]["basic"];
    assert_eq!(
        (basic["type"].as_str(), basic["scheme"].as_str()),
        (Some("http"), Some("basic"))
    );
    assert_eq!(doc["security"], serde_json::json!([{ "basic": [] }]));
    let declared_tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        declared_tags.len(),
        doc["tags"].as_array().unwrap().len(),
        "every tag is declared once"
    );

    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path}");
        assert!(
            !path.starts_with("/api/"),
            "{path} must be relative to the server URL"
        );
        let path_params: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .collect();
        let item = item.as_object().expect("path item");
        let mut operations = 0;
        for (method, op) in item {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let at = format!("{} {path}", method.to_uppercase());
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: no operationId"));
            assert!(
                operation_ids.insert(id.to_owned()),
                "{at}: operationId {id} is not unique"
            );
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{at}: no responses"));
            assert!(!responses.is_empty(), "{at}: no responses");
            for (status, response) in responses {
                assert!(
                    status == "default"
                        || status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                    "{at}: response key {status}"
                );
                assert!(
                    response["description"].is_string(),
                    "{at} {status}: no description"
                );
            }
            let tags = op["tags"]
                .as_array()
                .unwrap_or_else(|| panic!("{at}: no tags"));
            for tag in tags {
                assert!(
                    declared_tags.contains(tag.as_str().unwrap()),
                    "{at}: tag {tag} not declared"
                );
            }
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .into_iter()
                .chain(item.get("parameters").and_then(Value::as_array))
                .flatten()
                .collect();
            for name in &path_params {
                assert!(
                    params
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == *name && p["required"] == true),
                    "{at}: path parameter {name} is not declared as a required path parameter"
                );
            }
            for p in &params {
                assert!(
                    ["query", "header", "path", "cookie"].contains(&p["in"].as_str().unwrap_or("")),
                    "{at}: parameter {p}"
                );
            }
        }
        assert!(operations > 0, "{path} has no operations");
    }

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        assert!(
            reference.starts_with("#/components/"),
            "external or odd $ref {reference}"
        );
        assert!(
            resolve(&doc, reference).is_some(),
            "$ref {reference} does not resolve"
        );
    }
    // Errors are documented with Harbor's envelope.
    let errors = &doc["components"]["schemas"]["Errors"];
    assert_eq!(
        errors["properties"]["errors"]["items"]["$ref"],
        "#/components/schemas/Error"
    );
}

#[test]
fn openapi_document_has_harbors_operations() {
    // The table above is checked against Harbor's swagger when the
    // reference copy is at hand, so it cannot drift from Harbor's names.
    let swagger_path = std::env::var("HARBOR_SWAGGER")
        .unwrap_or_else(|_| "/work/shared/reference/harbor-swagger.yaml".into());
    match std::fs::read_to_string(&swagger_path) {
        Ok(text) => {
            let harbor = harbor_swagger_operations(&text);
            assert!(
                harbor.len() > 150,
                "parsed only {} operations",
                harbor.len()
            );
            for &(method, path, id) in HARBOR_OPERATIONS {
                assert_eq!(
                    harbor
                        .get(&(method.to_owned(), path.to_owned()))
                        .map(String::as_str),
                    Some(id),
                    "{method} {path} in Harbor's swagger"
                );
            }
        }
        Err(e) => eprintln!(
            "Harbor's swagger not read from {swagger_path} ({e}): table not cross-checked"
        ),
    }

    let doc = document();
    let mut missing = Vec::new();
    for &(method, path, id) in HARBOR_OPERATIONS {
        let found = doc["paths"][path][method]["operationId"].as_str();
        if found != Some(id) {
            missing.push(format!(
                "{} {path} ({id}): found {found:?}",
                method.to_uppercase()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "operations missing from the document:\n{}",
        missing.join("\n")
    );
}

#[test]
fn swagger_parser_reads_paths_methods_and_ids() {
    let text = "swagger: '2.0'\npaths:\n  /a:\n    get:\n      summary: x\n      operationId: getA\n    \
                parameters:\n      - name: b\n  '/b/{id}':\n    delete:\n      operationId: delB\n\
                definitions:\n  X:\n    get:\n      operationId: notAnOperation\n";
    let ops = harbor_swagger_operations(text);
    assert_eq!(
        ops.into_iter().collect::<Vec<_>>(),
        [
            (
                ("delete".to_owned(), "/b/{id}".to_owned()),
                "delB".to_owned()
            ),
            (("get".to_owned(), "/a".to_owned()), "getA".to_owned()),
        ]
    );
}
