//! A project's Configuration tab: publicity and (for system administrators)
//! the storage limit, with the quota's usage. The same rules as the API's
//! `PUT /projects/{name}`: project admins change the settings, only system
//! administrators the limit, and the limit changes through the quota.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::quotas::{check_hard_limit, quota_of_project, set_hard_limit};
use wharf_projects::{audit, set_metadata};

use super::form_failed;
use super::projects::{Quota, parse_limit};
use crate::access::{self, ProjectNav, audit_entry};
use crate::error::{UiError, UiResult};
use crate::format::project_url;
use crate::layout::{self, Chrome};
use crate::session::{PostedForm, Services, Viewer};

#[derive(Template)]
#[template(path = "configuration.html")]
struct ConfigurationPage {
    chrome: Chrome,
    nav: ProjectNav,
    public: bool,
    quota: Quota,
    /// The limit in GiB for the form; empty when unlimited.
    limit_gib: String,
    can_update: bool,
    may_set_quota: bool,
}

/// `GET /projects/{project}/configuration`.
pub(crate) async fn show(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
) -> UiResult<HttpResponse> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, &viewer, &path).await?;
    access::require(&access, "", "read")?;
    let quota = quota_of_project(pool, access.project.id).await?;
    let limit = access.project.storage_limit;
    Ok(layout::ok(&ConfigurationPage {
        chrome: Chrome::new(
            &viewer,
            format!("{} · Configuration", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(&access, &viewer, "configuration"),
        public: access.project.is_public(),
        quota: Quota::new(quota.used, limit),
        limit_gib: if limit < 0 {
            String::new()
        } else {
            format!("{}", limit as f64 / (1024.0 * 1024.0 * 1024.0))
        },
        can_update: access.allows("", "update"),
        may_set_quota: viewer.user.sysadmin,
    }))
}

#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    public: Option<String>,
    storage_limit: Option<String>,
    storage_unit: Option<String>,
}

/// `POST /projects/{project}/configuration`.
pub(crate) async fn update(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<SettingsForm>,
) -> HttpResponse {
    let back = project_url(&path, "/configuration");
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
        access::require(&access, "", "update")?;
        let project = access.project;
        let public = super::ticked(&form.public);
        // An empty limit field means unlimited; a field not sent leaves it.
        let new_limit = match &form.storage_limit {
            Some(value) => Some(
                parse_limit(value, form.storage_unit.as_deref().unwrap_or_default())?
                    .unwrap_or(wharf_projects::quotas::UNLIMITED),
            ),
            None => None,
        }
        .filter(|&limit| limit != project.storage_limit);
        if new_limit.is_some() && !viewer.user.sysadmin {
            return Err(UiError::Forbidden(
                "Only system administrators can change the storage limit.".into(),
            ));
        }
        if let Some(limit) = new_limit {
            check_hard_limit(limit)?;
        }
        let metadata = BTreeMap::from([("public".to_owned(), public.to_string())]);
        let mut tx = services.pool.begin().await?;
        set_metadata(&mut *tx, project.id, &metadata).await?;
        let mut changed = vec![format!("public={public}")];
        if let Some(limit) = new_limit {
            set_hard_limit(&mut tx, project.id, limit).await?;
            changed.push(format!("storage_limit={limit}"));
        }
        let description = format!("updated {}", changed.join(", "));
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(project.id),
                "update",
                "project",
                &project.name,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(&back, Some("Settings saved.")))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "settings"))
}
