//! The projects list (search, sort, badges, repository counts, quota bars),
//! creating and deleting projects.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::projects::{ProjectSearch, ProjectSort, repository_counts, search_projects};
use wharf_projects::users::TextMatch;
use wharf_projects::{Error, NewProject, ProjectName, Role, audit, create_project, delete_project};

use super::{form_failed, ticked, unconfirmed};
use crate::access::{self, audit_entry, role_label};
use crate::error::{UiError, UiResult};
use crate::format::{self, project_url};
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

/// One row of the projects table.
struct Row {
    name: String,
    url: String,
    public: bool,
    role: String,
    repositories: i64,
    quota: Quota,
    created: String,
}

/// A quota as the bar draws it.
pub(crate) struct Quota {
    pub used: String,
    pub limit: String,
    /// 0–100; `None` when unlimited.
    pub percent: Option<u8>,
}

impl Quota {
    pub(crate) fn new(used: i64, limit: i64) -> Quota {
        let percent = (limit > 0).then(|| {
            let p = (used.max(0) as f64 / limit as f64 * 100.0).round();
            p.clamp(0.0, 100.0) as u8
        });
        Quota {
            used: format::size(used),
            limit: if limit < 0 {
                "unlimited".to_owned()
            } else {
                format::size(limit)
            },
            percent,
        }
    }
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    pager: Pager,
    q: String,
    sort: String,
    can_create: bool,
    may_set_quota: bool,
}

/// The sort choices of the list: (value, label).
const SORTS: [(&str, &str); 4] = [
    ("name", "Name"),
    ("-creation_time", "Newest"),
    ("creation_time", "Oldest"),
    ("-update_time", "Recently changed"),
];

impl ProjectsPage {
    fn sorts(&self) -> &'static [(&'static str, &'static str)] {
        &SORTS
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    sort: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

fn sort_of(value: &str) -> (ProjectSort, bool) {
    match value {
        "-creation_time" => (ProjectSort::CreationTime, true),
        "creation_time" => (ProjectSort::CreationTime, false),
        "-update_time" => (ProjectSort::UpdateTime, true),
        _ => (ProjectSort::Name, false),
    }
}

/// `GET /projects`.
pub(crate) async fn list(
    services: Services,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> UiResult<HttpResponse> {
    let query = query.into_inner();
    let q = query.q.unwrap_or_default().trim().to_owned();
    let sort = query
        .sort
        .filter(|s| SORTS.iter().any(|(v, _)| v == s))
        .unwrap_or_else(|| "name".to_owned());
    let page = query.page.page();
    let pool = services.pool.get_ref();
    let search = ProjectSearch {
        see_all: viewer.user.sysadmin,
        member: Some(viewer.user.id),
        name: (!q.is_empty()).then(|| TextMatch::Contains(q.to_lowercase())),
        sort: vec![sort_of(&sort)],
        page,
        ..ProjectSearch::default()
    };
    let listing = search_projects(pool, &search).await?;
    let names: Vec<String> = listing.items.iter().map(|p| p.name.clone()).collect();
    let ids: Vec<i64> = listing.items.iter().map(|p| p.id).collect();
    let counts = repository_counts(pool, &names).await?;
    let usage = wharf_projects::quotas::usage_of(pool, &ids).await?;
    let roles = wharf_projects::members::roles_in_projects(pool, viewer.user.id, &ids).await?;
    let rows = listing
        .items
        .iter()
        .map(|p| Row {
            url: project_url(&p.name, "/repositories"),
            public: p.is_public(),
            role: roles
                .get(&p.id)
                .and_then(|held| Role::ALL.into_iter().find(|r| held.contains(r)))
                .map_or_else(
                    || {
                        if viewer.user.sysadmin {
                            "system admin".to_owned()
                        } else {
                            "—".to_owned()
                        }
                    },
                    |r| role_label(r).to_owned(),
                ),
            repositories: counts.get(&p.name).copied().unwrap_or(0),
            quota: Quota::new(usage.get(&p.id).copied().unwrap_or(0), p.storage_limit),
            created: format::time(p.created_at),
            name: p.name.clone(),
        })
        .collect();
    let pager = Pager::new(
        "/projects",
        &[
            ("q", q.clone()),
            (
                "sort",
                if sort == "name" {
                    String::new()
                } else {
                    sort.clone()
                },
            ),
        ],
        page,
        listing.total,
    );
    Ok(layout::ok(&ProjectsPage {
        chrome: Chrome::new(&viewer, "Projects", "projects"),
        rows,
        pager,
        q,
        sort,
        can_create: viewer.principal().can_system("project", "create"),
        may_set_quota: viewer.user.sysadmin,
    }))
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    public: Option<String>,
    /// A number with the unit below; empty for the default.
    storage_limit: Option<String>,
    storage_unit: Option<String>,
}

/// Bytes of a limit typed as a number and a unit; `-1` is unlimited.
pub(crate) fn parse_limit(value: &str, unit: &str) -> UiResult<Option<i64>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let number: f64 = value.parse().map_err(|_| {
        UiError::BadRequest(format!("The storage limit {value:?} is not a number."))
    })?;
    if number < 0.0 {
        return Ok(Some(wharf_projects::quotas::UNLIMITED));
    }
    let scale: f64 = match unit {
        "MiB" => 1024.0 * 1024.0,
        "TiB" => 1024.0_f64.powi(4),
        _ => 1024.0 * 1024.0 * 1024.0,
    };
    Ok(Some((number * scale).round() as i64))
}

/// `POST /projects`.
pub(crate) async fn create(
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<CreateForm>,
) -> HttpResponse {
    let done = async {
        access::require_system(&viewer, "project", "create")?;
        let name = ProjectName::parse(form.name.trim())?;
        // As in the API: only system administrators choose the quota.
        let storage_limit = match parse_limit(
            form.storage_limit.as_deref().unwrap_or_default(),
            form.storage_unit.as_deref().unwrap_or_default(),
        )? {
            Some(limit) if viewer.user.sysadmin && limit != 0 => {
                wharf_projects::quotas::check_hard_limit(limit)?;
                limit
            }
            _ => services.api.default_storage_limit,
        };
        let new = NewProject {
            public: ticked(&form.public),
            storage_limit,
            ..NewProject::new(name, viewer.user.id)
        };
        let mut tx = services.pool.begin().await?;
        let project = create_project(&mut *tx, &new).await?;
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(project.id),
                "create",
                "project",
                &project.name,
                "created the project",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &project_url(&project.name, "/repositories"),
            Some(&format!("Project {} created.", project.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, "/projects", "create-project"))
}

/// `GET /projects/{project}`: its first tab.
pub(crate) async fn show(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
) -> UiResult<HttpResponse> {
    let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
    Ok(layout::see_other(
        &project_url(&access.project.name, "/repositories"),
        None,
    ))
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    confirm: Option<String>,
}

/// `POST /projects/{project}/delete`: only an empty project can go.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<DeleteForm>,
) -> HttpResponse {
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
        access::require(&access, "", "delete")?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!(
                "Delete the project {}? Its members and robot accounts go with it.",
                access.project.name
            ),
            "/projects",
        ) {
            return Ok(page);
        }
        let project = access.project;
        let mut tx = services.pool.begin().await?;
        match delete_project(&mut *tx, project.id).await {
            Err(Error::Conflict(_)) => {
                return Err(UiError::BadRequest(format!(
                    "The project {} still holds repositories: delete them first.",
                    project.name
                )));
            }
            other => other?,
        }
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(project.id),
                "delete",
                "project",
                &project.name,
                "deleted the project",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            "/projects",
            Some(&format!("Project {} deleted.", project.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, "/projects", &format!("delete-{}", path.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_in_their_unit() {
        assert_eq!(parse_limit("", "GiB").unwrap(), None);
        assert_eq!(
            parse_limit("2", "GiB").unwrap(),
            Some(2 * 1024 * 1024 * 1024)
        );
        assert_eq!(parse_limit("1.5", "MiB").unwrap(), Some(1_572_864));
        assert_eq!(parse_limit("-1", "GiB").unwrap(), Some(-1));
        assert!(parse_limit("lots", "GiB").is_err());
    }

    #[test]
    fn quota_bars_fill_by_share() {
        assert_eq!(Quota::new(512, 1024).percent, Some(50));
        assert_eq!(Quota::new(5000, 1024).percent, Some(100));
        assert_eq!(Quota::new(10, -1).percent, None);
        assert_eq!(Quota::new(10, -1).limit, "unlimited");
    }
}
