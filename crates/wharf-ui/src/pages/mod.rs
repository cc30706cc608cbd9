//! The console's pages, one module per area. Each page is an askama struct
//! declared next to its handler; [`routes`] is the one route table.

mod admin;
mod admin_robots;
mod artifact_labels;
pub(crate) mod auth;
mod configuration;
mod gc;
mod labels;
mod logs;
mod members;
mod policy;
mod projects;
mod registries;
mod replications;
mod repositories;
mod retention;
mod robots;
mod settings;

use actix_web::{Route, web};

use crate::error::UiError;
use crate::layout;

/// Every console path and its routes.
pub(crate) fn routes() -> Vec<(&'static str, Vec<Route>)> {
    vec![
        ("/", vec![web::get().to(auth::home)]),
        (
            "/login",
            vec![web::get().to(auth::login_page), web::post().to(auth::login)],
        ),
        ("/logout", vec![web::post().to(auth::logout)]),
        ("/account", vec![web::get().to(auth::account)]),
        (
            "/account/password",
            vec![web::post().to(auth::change_password)],
        ),
        (
            "/projects",
            vec![
                web::get().to(projects::list),
                web::post().to(projects::create),
            ],
        ),
        ("/projects/{project}", vec![web::get().to(projects::show)]),
        (
            "/projects/{project}/delete",
            vec![web::post().to(projects::delete)],
        ),
        (
            "/projects/{project}/repositories",
            vec![web::get().to(repositories::list)],
        ),
        // Repository names hold slashes; an artifact's page is marked by
        // `/-/`, which no repository path segment can be.
        (
            "/projects/{project}/repositories/{repository:.+}/-/artifacts/{digest}",
            vec![web::get().to(repositories::artifact)],
        ),
        (
            "/projects/{project}/repositories/{repository:.+}",
            vec![web::get().to(repositories::repository)],
        ),
        (
            "/projects/{project}/tags/add",
            vec![web::post().to(repositories::add_tag)],
        ),
        (
            "/projects/{project}/tags/delete",
            vec![web::post().to(repositories::delete_tag)],
        ),
        (
            "/projects/{project}/artifacts/delete",
            vec![web::post().to(repositories::delete_artifact)],
        ),
        (
            "/projects/{project}/artifacts/labels/attach",
            vec![web::post().to(artifact_labels::attach)],
        ),
        (
            "/projects/{project}/artifacts/labels/detach",
            vec![web::post().to(artifact_labels::detach)],
        ),
        (
            "/projects/{project}/members",
            vec![web::get().to(members::list), web::post().to(members::add)],
        ),
        (
            "/projects/{project}/members/{mid}/role",
            vec![web::post().to(members::change_role)],
        ),
        (
            "/projects/{project}/members/{mid}/delete",
            vec![web::post().to(members::remove)],
        ),
        (
            "/projects/{project}/robots",
            vec![web::get().to(robots::list), web::post().to(robots::create)],
        ),
        (
            "/projects/{project}/robots/{id}/refresh",
            vec![web::post().to(robots::refresh)],
        ),
        (
            "/projects/{project}/robots/{id}/enabled",
            vec![web::post().to(robots::set_enabled)],
        ),
        (
            "/projects/{project}/robots/{id}/delete",
            vec![web::post().to(robots::delete)],
        ),
        (
            "/projects/{project}/robots/login.txt",
            vec![web::post().to(robots::login_instructions)],
        ),
        ("/projects/{project}/logs", vec![web::get().to(logs::list)]),
        (
            "/projects/{project}/policy",
            vec![web::get().to(policy::show)],
        ),
        (
            "/projects/{project}/policy/immutable",
            vec![web::post().to(policy::create)],
        ),
        (
            "/projects/{project}/policy/immutable/{id}",
            vec![web::post().to(policy::update)],
        ),
        (
            "/projects/{project}/policy/immutable/{id}/enabled",
            vec![web::post().to(policy::set_enabled)],
        ),
        (
            "/projects/{project}/policy/immutable/{id}/delete",
            vec![web::post().to(policy::delete)],
        ),
        (
            "/projects/{project}/policy/retention",
            vec![web::get().to(retention::show)],
        ),
        (
            "/projects/{project}/policy/retention/rules",
            vec![web::post().to(retention::add_rule)],
        ),
        (
            "/projects/{project}/policy/retention/rules/{number}/enabled",
            vec![web::post().to(retention::set_rule_enabled)],
        ),
        (
            "/projects/{project}/policy/retention/rules/{number}/delete",
            vec![web::post().to(retention::delete_rule)],
        ),
        (
            "/projects/{project}/policy/retention/schedule",
            vec![web::post().to(retention::set_schedule)],
        ),
        (
            "/projects/{project}/policy/retention/run",
            vec![web::post().to(retention::run)],
        ),
        (
            "/projects/{project}/policy/retention/runs/{id}",
            vec![web::get().to(retention::show_run)],
        ),
        (
            "/projects/{project}/policy/retention/runs/{id}/stop",
            vec![web::post().to(retention::stop_run)],
        ),
        (
            "/projects/{project}/labels",
            vec![web::get().to(labels::list), web::post().to(labels::create)],
        ),
        (
            "/projects/{project}/labels/{id}/delete",
            vec![web::post().to(labels::delete)],
        ),
        (
            "/projects/{project}/configuration",
            vec![
                web::get().to(configuration::show),
                web::post().to(configuration::update),
            ],
        ),
        (
            "/admin/users",
            vec![web::get().to(admin::users), web::post().to(admin::create)],
        ),
        (
            "/admin/users/{id}/password",
            vec![web::post().to(admin::reset_password)],
        ),
        (
            "/admin/users/{id}/sysadmin",
            vec![web::post().to(admin::set_admin)],
        ),
        (
            "/admin/users/{id}/delete",
            vec![web::post().to(admin::delete)],
        ),
        ("/admin/logs", vec![web::get().to(admin::logs)]),
        (
            "/admin/robots",
            vec![
                web::get().to(admin_robots::list),
                web::post().to(admin_robots::create),
            ],
        ),
        (
            "/admin/robots/login.txt",
            vec![web::post().to(admin_robots::login_instructions)],
        ),
        (
            "/admin/robots/{id}/refresh",
            vec![web::post().to(admin_robots::refresh)],
        ),
        (
            "/admin/robots/{id}/enabled",
            vec![web::post().to(admin_robots::set_enabled)],
        ),
        (
            "/admin/robots/{id}/delete",
            vec![web::post().to(admin_robots::delete)],
        ),
        ("/admin/settings", vec![web::get().to(settings::show)]),
        ("/admin/gc", vec![web::get().to(gc::show)]),
        ("/admin/gc/schedule", vec![web::post().to(gc::set_schedule)]),
        ("/admin/gc/run", vec![web::post().to(gc::run)]),
        ("/admin/gc/{id}", vec![web::get().to(gc::show_run)]),
        ("/admin/gc/{id}/stop", vec![web::post().to(gc::stop)]),
        (
            "/admin/registries",
            vec![
                web::get().to(registries::list),
                web::post().to(registries::create),
            ],
        ),
        (
            "/admin/registries/{id}",
            vec![
                web::get().to(registries::show),
                web::post().to(registries::update),
            ],
        ),
        (
            "/admin/registries/{id}/ping",
            vec![web::post().to(registries::ping)],
        ),
        (
            "/admin/registries/{id}/delete",
            vec![web::post().to(registries::delete)],
        ),
        (
            "/admin/replications",
            vec![
                web::get().to(replications::list),
                web::post().to(replications::create),
            ],
        ),
        (
            "/admin/replications/{id}",
            vec![
                web::get().to(replications::show),
                web::post().to(replications::update),
            ],
        ),
        (
            "/admin/replications/{id}/enabled",
            vec![web::post().to(replications::set_enabled)],
        ),
        (
            "/admin/replications/{id}/delete",
            vec![web::post().to(replications::delete)],
        ),
        (
            "/admin/replications/{id}/run",
            vec![web::post().to(replications::run)],
        ),
        (
            "/admin/replications/{id}/executions/{eid}",
            vec![web::get().to(replications::show_execution)],
        ),
        (
            "/admin/replications/{id}/executions/{eid}/stop",
            vec![web::post().to(replications::stop)],
        ),
        (
            "/admin/replications/{id}/executions/{eid}/tasks/{tid}",
            vec![web::get().to(replications::show_task)],
        ),
    ]
}

/// A failed form post: errors the viewer can act on go back to the form's
/// page and are shown next to the form; anything else is an error page.
pub(crate) fn form_failed(e: UiError, back: &str, form: &str) -> actix_web::HttpResponse {
    match e {
        UiError::BadRequest(_) | UiError::Forbidden(_) | UiError::NotFound(_) => {
            layout::back_with_error(back, form, &e.message())
        }
        other => actix_web::ResponseError::error_response(&other),
    }
}

/// Whether a posted checkbox is ticked.
pub(crate) fn ticked(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty())
}

#[derive(askama::Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    chrome: layout::Chrome,
    question: String,
    action: String,
    fields: Vec<(String, String)>,
    back: String,
}

/// Destructive posts carry `confirm=yes` (the script sets it once the
/// viewer agreed in its prompt). Without it — no JavaScript — this answers
/// with a page that asks, and whose button re-posts the same form confirmed.
pub(crate) fn unconfirmed(
    req: &actix_web::HttpRequest,
    viewer: &crate::session::Viewer,
    confirm: &Option<String>,
    question: &str,
    back: &str,
) -> Option<actix_web::HttpResponse> {
    if confirm.as_deref() == Some("yes") {
        return None;
    }
    Some(layout::ok(&ConfirmPage {
        chrome: layout::Chrome::new(viewer, "Please confirm", ""),
        question: question.to_owned(),
        action: req.path().to_owned(),
        fields: crate::session::posted_fields(req),
        back: back.to_owned(),
    }))
}
