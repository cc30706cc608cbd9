//! Administration → Robot accounts: system-level robots — list, create with
//! system permissions and permissions in named projects (or `*`, every
//! project), refresh the secret, disable or enable, delete. Access is the
//! API's system `robot` resource; validation is `wharf_projects::robots`'
//! (what may be granted where, names, expiry), as for `/robots`.
//!
//! As on a project's Robot accounts tab, a secret exists in plain text only
//! in the page answering the post that made it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::robots::{
    self, NewRobot, PROJECT_GRANTABLE, PermissionKind, PermissionSpec, Robot, RobotLevel,
    RobotQuery, RobotUpdate, SYSTEM_GRANTABLE,
};
use wharf_projects::{Error, audit};

use super::robots::{
    PickerGroup, RobotRow, ShownSecret, grants_in, instructions, picker_of, robot_rows, summary,
};
use super::{form_failed, unconfirmed};
use crate::access::{self, audit_entry};
use crate::error::{UiError, UiResult};
use crate::layout::{self, Chrome};
use crate::paging::{DEFAULT_PAGE_SIZE, PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

const ROBOTS: &str = "/admin/robots";

/// Ticked on a new system robot: pulling and pushing in its projects.
const DEFAULT_PROJECT_GRANTS: [&str; 2] = ["repository:pull", "repository:push"];

#[derive(Template)]
#[template(path = "admin_robots.html")]
struct RobotsPage {
    chrome: Chrome,
    tab: &'static str,
    rows: Vec<RobotRow>,
    pager: Pager,
    can_create: bool,
    can_update: bool,
    can_delete: bool,
    system_picker: Vec<PickerGroup>,
    project_picker: Vec<PickerGroup>,
    secret: Option<ShownSecret>,
    prefix: String,
}

/// The system robots' page, with a just-made secret when there is one.
async fn robots_page(
    req: &HttpRequest,
    services: &Services,
    viewer: &Viewer,
    page: wharf_projects::Page,
    secret: Option<(String, String)>,
) -> UiResult<HttpResponse> {
    let prefix = services.api.robot_prefix.clone();
    let listing = robots::list_robots(
        services.pool.get_ref(),
        &RobotQuery {
            level: Some(RobotLevel::System),
            page,
            ..RobotQuery::default()
        },
    )
    .await?;
    let rows = robot_rows(&listing.items, &prefix, described);
    let principal = viewer.principal();
    Ok(layout::ok(&RobotsPage {
        chrome: Chrome::new(viewer, "Robot accounts", "admin"),
        tab: "robots",
        rows,
        pager: Pager::new(ROBOTS, &[], page, listing.total),
        can_create: principal.can_system("robot", "create"),
        can_update: principal.can_system("robot", "create")
            && principal.can_system("robot", "delete"),
        can_delete: principal.can_system("robot", "delete"),
        system_picker: picker_of(SYSTEM_GRANTABLE, &[]),
        project_picker: picker_of(PROJECT_GRANTABLE, &DEFAULT_PROJECT_GRANTS),
        secret: secret.map(|(login_name, secret)| ShownSecret {
            login_name,
            secret,
            host: services.registry_host(req),
        }),
        prefix,
    }))
}

/// `system: …; projects a, b: …` — where each grant applies.
fn described(robot: &Robot) -> String {
    let namespaces: Vec<&str> = robot
        .permissions
        .iter()
        .filter(|p| p.kind == PermissionKind::Project)
        .map(|p| p.namespace.as_str())
        .collect();
    let what = summary(robot);
    if namespaces.is_empty() {
        format!("system · {what}")
    } else {
        format!("projects {} · {what}", namespaces.join(", "))
    }
}

/// `GET /admin/robots`.
pub(crate) async fn list(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, "robot", "list")?;
    robots_page(&req, &services, &viewer, query.page(), None).await
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    #[serde(default)]
    description: String,
    /// Days; -1 never expires.
    duration: String,
    /// System `resource:action` grants.
    #[serde(default)]
    system: Vec<String>,
    /// Project names, separated by commas or spaces; `*` for every project.
    #[serde(default)]
    projects: String,
    /// Project `resource:action` grants, in each of `projects`.
    #[serde(default)]
    access: Vec<String>,
}

/// The permission entries a form asks for: the system grants, then the
/// project grants in each named project.
fn permissions(form: &CreateForm) -> UiResult<Vec<PermissionSpec>> {
    let mut specs = Vec::new();
    if !form.system.is_empty() {
        specs.push(PermissionSpec {
            kind: "system".to_owned(),
            namespace: "/".to_owned(),
            access: grants_in(&form.system, SYSTEM_GRANTABLE)?,
        });
    }
    let projects: Vec<&str> = form
        .projects
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    if !projects.is_empty() {
        let access = grants_in(&form.access, PROJECT_GRANTABLE).map_err(|_| {
            UiError::BadRequest("Pick at least one project permission for the projects.".into())
        })?;
        for project in projects {
            specs.push(PermissionSpec {
                kind: "project".to_owned(),
                namespace: project.to_owned(),
                access: access.clone(),
            });
        }
    } else if !form.access.is_empty() && form.system.is_empty() {
        return Err(UiError::BadRequest(
            "Name the projects the project permissions are for (or * for every project).".into(),
        ));
    }
    if specs.is_empty() {
        return Err(UiError::BadRequest(
            "Pick at least one permission for the robot.".into(),
        ));
    }
    Ok(specs)
}

/// `POST /admin/robots`: on success, the page with the secret.
pub(crate) async fn create(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<CreateForm>,
) -> HttpResponse {
    let done = async {
        access::require_system(&viewer, "robot", "create")?;
        let duration_days: i64 = form.duration.trim().parse().map_err(|_| {
            UiError::BadRequest("The expiry must be a number of days, or -1 for never.".into())
        })?;
        let new = NewRobot {
            name: form.name.trim().to_owned(),
            description: form.description.trim().to_owned(),
            level: RobotLevel::System,
            duration_days,
            disabled: false,
            permissions: permissions(&form)?,
            creator_type: "local".to_owned(),
            creator_ref: viewer.user.id,
        };
        let mut tx = services.pool.begin().await?;
        let created = robots::create_robot(&mut *tx, &new).await?;
        let login_name = created.robot.login_name(&services.api.robot_prefix);
        let description = format!("created robot account {login_name}");
        audit::record(
            &mut *tx,
            &audit_entry(&viewer, None, "create", "robot", &login_name, &description),
        )
        .await?;
        tx.commit().await?;
        robots_page(
            &req,
            &services,
            &viewer,
            wharf_projects::Page {
                page: 1,
                page_size: DEFAULT_PAGE_SIZE,
            },
            Some((login_name, created.secret)),
        )
        .await
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, ROBOTS, "create-robot"))
}

/// The system robot `id`, once `action` on robots is allowed.
async fn system_robot(
    services: &Services,
    viewer: &Viewer,
    id: i64,
    action: &str,
) -> UiResult<Robot> {
    access::require_system(viewer, "robot", action)?;
    match robots::get_robot(services.pool.get_ref(), id).await {
        Ok(robot) if robot.level() == RobotLevel::System => Ok(robot),
        Ok(_) | Err(Error::NotFound) => Err(UiError::not_found("That robot account is gone.")),
        Err(e) => Err(e.into()),
    }
}

async fn record(
    tx: &mut sqlx::PgConnection,
    viewer: &Viewer,
    operation: &str,
    login_name: &str,
    description: &str,
) -> UiResult<()> {
    audit::record(
        &mut *tx,
        &audit_entry(viewer, None, operation, "robot", login_name, description),
    )
    .await?;
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    confirm: Option<String>,
    enabled: Option<String>,
}

/// `POST /admin/robots/{id}/refresh`: a new secret, shown once.
pub(crate) async fn refresh(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        let robot = system_robot(&services, &viewer, id, "create").await?;
        let login_name = robot.login_name(&services.api.robot_prefix);
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Replace the secret of {login_name}? The old one stops working at once."),
            ROBOTS,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        let secret = robots::refresh_secret(&mut *tx, id, None)
            .await?
            .ok_or(UiError::Internal)?;
        record(
            &mut tx,
            &viewer,
            "update",
            &login_name,
            &format!("refreshed the secret of robot account {login_name}"),
        )
        .await?;
        tx.commit().await?;
        robots_page(
            &req,
            &services,
            &viewer,
            wharf_projects::Page {
                page: 1,
                page_size: DEFAULT_PAGE_SIZE,
            },
            Some((login_name, secret)),
        )
        .await
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, ROBOTS, &format!("robot-{id}")))
}

/// `POST /admin/robots/{id}/enabled`: `enabled=true|false`.
pub(crate) async fn set_enabled(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        let robot = system_robot(&services, &viewer, id, "create").await?;
        let enable = form.enabled.as_deref() == Some("true");
        let update = RobotUpdate {
            description: robot.description.clone(),
            duration_days: robot.duration_days,
            disabled: !enable,
            permissions: robot
                .permissions
                .iter()
                .map(|p| PermissionSpec {
                    kind: match p.kind {
                        PermissionKind::System => "system",
                        PermissionKind::Project => "project",
                    }
                    .to_owned(),
                    namespace: p.namespace.clone(),
                    access: p.access.clone(),
                })
                .collect(),
        };
        let login_name = robot.login_name(&services.api.robot_prefix);
        let word = if enable { "enabled" } else { "disabled" };
        let mut tx = services.pool.begin().await?;
        robots::update_robot(&mut *tx, id, &update).await?;
        record(
            &mut tx,
            &viewer,
            "update",
            &login_name,
            &format!("{word} robot account {login_name}"),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            ROBOTS,
            Some(&format!("{login_name} is {word}.")),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, ROBOTS, &format!("robot-{id}")))
}

/// `POST /admin/robots/{id}/delete`.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        let robot = system_robot(&services, &viewer, id, "delete").await?;
        let login_name = robot.login_name(&services.api.robot_prefix);
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Delete the robot account {login_name}?"),
            ROBOTS,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        robots::delete_robot(&mut *tx, id).await?;
        record(
            &mut tx,
            &viewer,
            "delete",
            &login_name,
            &format!("deleted robot account {login_name}"),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            ROBOTS,
            Some(&format!("{login_name} was deleted.")),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, ROBOTS, &format!("robot-{id}")))
}

#[derive(Deserialize)]
pub(crate) struct InstructionsForm {
    login_name: String,
    secret: String,
}

/// `POST /admin/robots/login.txt`: the `docker login` instructions for a
/// secret just shown, as a file.
pub(crate) async fn login_instructions(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<InstructionsForm>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, "robot", "list")?;
    let host = services.registry_host(&req);
    let text = instructions(&host, &form.login_name, &form.secret);
    let file = format!("{}.txt", form.login_name.replace(['$', '+'], "-"));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .body(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(system: &[&str], projects: &str, access: &[&str]) -> CreateForm {
        CreateForm {
            name: "ci".into(),
            description: String::new(),
            duration: "-1".into(),
            system: system.iter().map(|s| s.to_string()).collect(),
            projects: projects.into(),
            access: access.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_form_becomes_one_entry_per_namespace() {
        let specs = permissions(&form(
            &["project:create"],
            "team, web *",
            &["repository:pull"],
        ))
        .unwrap();
        let namespaces: Vec<&str> = specs.iter().map(|s| s.namespace.as_str()).collect();
        assert_eq!(namespaces, ["/", "team", "web", "*"]);
        assert_eq!(specs[0].kind, "system");
        assert_eq!(specs[1].access[0].resource, "repository");
        // Project grants without projects, or nothing at all, are refused.
        assert!(permissions(&form(&[], "", &["repository:pull"])).is_err());
        assert!(permissions(&form(&[], "", &[])).is_err());
        // A project grant offered as a system one is refused.
        assert!(permissions(&form(&["repository:pull"], "", &[])).is_err());
    }
}
