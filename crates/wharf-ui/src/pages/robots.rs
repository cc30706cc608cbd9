//! A project's robot accounts: list, create with a permission picker and an
//! expiry, refresh the secret, disable or enable, delete.
//!
//! A secret exists in plain text only in the answer to the post that made
//! it: that answer is the page showing it (never a redirect, so it is never
//! in a cookie or a URL), with a copy button and a download of `docker
//! login` instructions, which re-posts the secret to come back as a file.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::audit;
use wharf_projects::robots::{
    self, NewRobot, PROJECT_GRANTABLE, PermissionSpec, Robot, RobotAccess, RobotLevel, RobotQuery,
    RobotUpdate,
};
use wharf_projects::{Error, ProjectAccess};

use super::{form_failed, unconfirmed};
use crate::access::{self, ProjectNav, audit_entry};
use crate::error::{UiError, UiResult};
use crate::format::{self, project_url};
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

/// A robot as the project and system robot lists show it.
pub(super) struct RobotRow {
    pub(super) id: i64,
    pub(super) login_name: String,
    pub(super) description: String,
    pub(super) permissions: String,
    pub(super) expires: String,
    pub(super) status: &'static str,
    pub(super) disabled: bool,
    pub(super) created: String,
}

/// The rows of `robots`, their permissions described by `describe`.
pub(super) fn robot_rows(
    robots: &[Robot],
    prefix: &str,
    describe: fn(&Robot) -> String,
) -> Vec<RobotRow> {
    let now = chrono::Utc::now();
    robots
        .iter()
        .map(|r| RobotRow {
            id: r.id,
            login_name: r.login_name(prefix),
            description: r.description.clone(),
            permissions: describe(r),
            expires: r
                .expires_at
                .map_or_else(|| "never".to_owned(), format::time),
            status: if r.disabled {
                "disabled"
            } else if r.is_expired(now) {
                "expired"
            } else {
                "active"
            },
            disabled: r.disabled,
            created: format::time(r.created_at),
        })
        .collect()
}

/// One resource of the picker and its actions: (`resource:action`, action, ticked).
pub(super) struct PickerGroup {
    pub(super) resource: &'static str,
    pub(super) actions: Vec<(String, &'static str, bool)>,
}

/// Ticked on a new robot: what a CI pipeline needs to push and pull.
const DEFAULT_GRANTS: [&str; 2] = ["repository:pull", "repository:push"];

fn picker() -> Vec<PickerGroup> {
    picker_of(PROJECT_GRANTABLE, &DEFAULT_GRANTS)
}

/// The picker of the `grantable` pairs, with `defaults` ticked.
pub(super) fn picker_of(
    grantable: &[(&'static str, &'static str)],
    defaults: &[&str],
) -> Vec<PickerGroup> {
    let mut groups: Vec<PickerGroup> = Vec::new();
    for &(resource, action) in grantable {
        let value = format!("{resource}:{action}");
        let ticked = defaults.contains(&value.as_str());
        match groups.iter_mut().find(|g| g.resource == resource) {
            Some(group) => group.actions.push((value, action, ticked)),
            None => groups.push(PickerGroup {
                resource,
                actions: vec![(value, action, ticked)],
            }),
        }
    }
    groups
}

/// A just-made secret, shown once.
pub(super) struct ShownSecret {
    pub(super) login_name: String,
    pub(super) secret: String,
    pub(super) host: String,
}

#[derive(Template)]
#[template(path = "robots.html")]
struct RobotsPage {
    chrome: Chrome,
    nav: ProjectNav,
    rows: Vec<RobotRow>,
    pager: Pager,
    can_create: bool,
    can_update: bool,
    can_delete: bool,
    picker: Vec<PickerGroup>,
    secret: Option<ShownSecret>,
    prefix: String,
}

pub(super) fn summary(robot: &Robot) -> String {
    let mut by_resource: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for permission in &robot.permissions {
        for access in &permission.access {
            by_resource
                .entry(access.resource.as_str())
                .or_default()
                .push(access.action.as_str());
        }
    }
    by_resource
        .into_iter()
        .map(|(resource, actions)| format!("{resource}: {}", actions.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn robots_page(
    req: &HttpRequest,
    services: &Services,
    viewer: &Viewer,
    access: &ProjectAccess,
    page: wharf_projects::Page,
    secret: Option<(String, String)>,
) -> UiResult<HttpResponse> {
    let prefix = services.api.robot_prefix.clone();
    let listing = robots::list_robots(
        services.pool.get_ref(),
        &RobotQuery {
            level: Some(RobotLevel::Project),
            project_id: Some(access.project.id),
            page,
            ..RobotQuery::default()
        },
    )
    .await?;
    let rows = robot_rows(&listing.items, &prefix, summary);
    let here = project_url(&access.project.name, "/robots");
    let page_html = RobotsPage {
        chrome: Chrome::new(
            viewer,
            format!("{} · Robot accounts", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(access, viewer, "robots"),
        rows,
        pager: Pager::new(&here, &[], page, listing.total),
        can_create: access.allows("robot", "create"),
        can_update: access.allows("robot", "create") && access.allows("robot", "delete"),
        can_delete: access.allows("robot", "delete"),
        picker: picker(),
        secret: secret.map(|(login_name, secret)| ShownSecret {
            login_name,
            secret,
            host: services.registry_host(req),
        }),
        prefix,
    };
    Ok(layout::ok(&page_html))
}

/// `GET /projects/{project}/robots`.
pub(crate) async fn list(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
    access::require(&access, "robot", "list")?;
    robots_page(&req, &services, &viewer, &access, query.page(), None).await
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    #[serde(default)]
    description: String,
    /// Days; -1 never expires.
    duration: String,
    #[serde(default)]
    access: Vec<String>,
}

fn grants(values: &[String]) -> UiResult<Vec<RobotAccess>> {
    grants_in(values, PROJECT_GRANTABLE)
}

/// The `resource:action` values of a picker, each one of `grantable`; at
/// least one.
pub(super) fn grants_in(
    values: &[String],
    grantable: &[(&str, &str)],
) -> UiResult<Vec<RobotAccess>> {
    let mut out = Vec::new();
    for value in values {
        let (resource, action) = value
            .split_once(':')
            .filter(|(r, a)| grantable.iter().any(|(gr, ga)| gr == r && ga == a))
            .ok_or_else(|| UiError::BadRequest(format!("{value:?} is not a permission.")))?;
        out.push(RobotAccess {
            resource: resource.to_owned(),
            action: action.to_owned(),
        });
    }
    if out.is_empty() {
        return Err(UiError::BadRequest(
            "Pick at least one permission for the robot.".into(),
        ));
    }
    Ok(out)
}

/// `POST /projects/{project}/robots`: on success, the page with the secret.
pub(crate) async fn create(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<CreateForm>,
) -> HttpResponse {
    let back = project_url(&path, "/robots");
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
        access::require(&access, "robot", "create")?;
        let duration_days: i64 = form.duration.trim().parse().map_err(|_| {
            UiError::BadRequest("The expiry must be a number of days, or -1 for never.".into())
        })?;
        let new = NewRobot {
            name: form.name.trim().to_owned(),
            description: form.description.trim().to_owned(),
            level: RobotLevel::Project,
            duration_days,
            disabled: false,
            permissions: vec![PermissionSpec {
                kind: "project".to_owned(),
                namespace: access.project.name.clone(),
                access: grants(&form.access)?,
            }],
            creator_type: "local".to_owned(),
            creator_ref: viewer.user.id,
        };
        let mut tx = services.pool.begin().await?;
        let created = robots::create_robot(&mut *tx, &new).await?;
        let login_name = created.robot.login_name(&services.api.robot_prefix);
        let description = format!("created robot account {login_name}");
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                created.robot.project_id,
                "create",
                "robot",
                &login_name,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        robots_page(
            &req,
            &services,
            &viewer,
            &access,
            wharf_projects::Page {
                page: 1,
                page_size: crate::paging::DEFAULT_PAGE_SIZE,
            },
            Some((login_name, created.secret)),
        )
        .await
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "create-robot"))
}

/// The robot `id` of the path's project.
async fn project_robot(
    services: &Services,
    viewer: &Viewer,
    project: &str,
    id: i64,
    action: &str,
) -> UiResult<(ProjectAccess, Robot)> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, viewer, project).await?;
    access::require(&access, "robot", action)?;
    let robot = match robots::get_robot(pool, id).await {
        Ok(robot) if robot.project_id == Some(access.project.id) => robot,
        Ok(_) | Err(Error::NotFound) => {
            return Err(UiError::not_found("That robot account is gone."));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((access, robot))
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    confirm: Option<String>,
    enabled: Option<String>,
}

/// `POST /projects/{project}/robots/{id}/refresh`: a new secret, shown once.
pub(crate) async fn refresh(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = project_url(&project, "/robots");
    let done = async {
        // Harbor lets whoever may create robots refresh their secrets.
        let (access, robot) = project_robot(&services, &viewer, &project, id, "create").await?;
        let login_name = robot.login_name(&services.api.robot_prefix);
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Replace the secret of {login_name}? The old one stops working at once."),
            &back,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        let secret = robots::refresh_secret(&mut *tx, id, None)
            .await?
            .ok_or(UiError::Internal)?;
        let description = format!("refreshed the secret of robot account {login_name}");
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                robot.project_id,
                "update",
                "robot",
                &login_name,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        robots_page(
            &req,
            &services,
            &viewer,
            &access,
            wharf_projects::Page {
                page: 1,
                page_size: crate::paging::DEFAULT_PAGE_SIZE,
            },
            Some((login_name, secret)),
        )
        .await
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("robot-{id}")))
}

/// `POST /projects/{project}/robots/{id}/enabled`: `enabled=true|false`.
pub(crate) async fn set_enabled(
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = project_url(&project, "/robots");
    let done = async {
        let (_, robot) = project_robot(&services, &viewer, &project, id, "create").await?;
        let enable = form.enabled.as_deref() == Some("true");
        let update = RobotUpdate {
            description: robot.description.clone(),
            duration_days: robot.duration_days,
            disabled: !enable,
            permissions: robot
                .permissions
                .iter()
                .map(|p| PermissionSpec {
                    kind: "project".to_owned(),
                    namespace: p.namespace.clone(),
                    access: p.access.clone(),
                })
                .collect(),
        };
        let login_name = robot.login_name(&services.api.robot_prefix);
        let mut tx = services.pool.begin().await?;
        robots::update_robot(&mut *tx, id, &update).await?;
        let description = format!(
            "{} robot account {login_name}",
            if enable { "enabled" } else { "disabled" }
        );
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                robot.project_id,
                "update",
                "robot",
                &login_name,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!(
                "{login_name} is {}.",
                if enable { "enabled" } else { "disabled" }
            )),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("robot-{id}")))
}

/// `POST /projects/{project}/robots/{id}/delete`.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = project_url(&project, "/robots");
    let done = async {
        let (_, robot) = project_robot(&services, &viewer, &project, id, "delete").await?;
        let login_name = robot.login_name(&services.api.robot_prefix);
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Delete the robot account {login_name}?"),
            &back,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        robots::delete_robot(&mut *tx, id).await?;
        let description = format!("deleted robot account {login_name}");
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                robot.project_id,
                "delete",
                "robot",
                &login_name,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!("{login_name} was deleted.")),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("robot-{id}")))
}

#[derive(Deserialize)]
pub(crate) struct InstructionsForm {
    login_name: String,
    secret: String,
}

/// `POST /projects/{project}/robots/login.txt`: the `docker login`
/// instructions for a secret just shown, as a file (the secret comes back
/// from the page; Wharf keeps only its hash).
pub(crate) async fn login_instructions(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<InstructionsForm>,
) -> UiResult<HttpResponse> {
    let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
    access::require(&access, "robot", "list")?;
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

pub(super) fn instructions(host: &str, login_name: &str, secret: &str) -> String {
    // Single quotes keep the shell from expanding the `$` of robot names.
    format!(
        "# Robot account {login_name} for {host}\n\
         # Keep this file secret: it holds the account's password.\n\
         echo '{secret}' | docker login {host} --username '{login_name}' --password-stdin\n\
         \n\
         # skopeo, podman and buildah take the same credentials:\n\
         # skopeo login {host} --username '{login_name}' --password '{secret}'\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picker_offers_every_grantable_pair_once() {
        let groups = picker();
        let count: usize = groups.iter().map(|g| g.actions.len()).sum();
        assert_eq!(count, PROJECT_GRANTABLE.len());
        let ticked: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.actions.iter().filter(|a| a.2).map(|a| a.0.as_str()))
            .collect();
        assert_eq!(ticked, ["repository:pull", "repository:push"]);
    }

    #[test]
    fn unknown_permissions_are_refused() {
        assert!(grants(&["repository:pull".into()]).is_ok());
        assert!(grants(&["repository:own".into()]).is_err());
        assert!(grants(&[]).is_err());
    }

    #[test]
    fn instructions_quote_the_robot_name() {
        let text = instructions("reg:5000", "robot$team+ci", "s3cret");
        assert!(text.contains("--username 'robot$team+ci'"));
        assert!(text.contains("echo 's3cret' | docker login reg:5000"));
    }
}
