//! A project's Policy tab, immutable tags part: its immutable-tag rules —
//! list, add, edit, disable/enable, delete — through
//! `wharf_projects::immutability`, the same rule parser and store the API's
//! `/immutabletagrules` uses. Tag retention, the tab's other part, is
//! [`super::retention`].

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::immutability::{
    ImmutableRule, RuleInput, RuleQuery, RuleSpec, create_rule, delete_rule, get_rule, list_rules,
    repository_decoration, tag_decoration, update_rule,
};
use wharf_projects::{Error, ProjectAccess, audit};

use super::{form_failed, unconfirmed};
use crate::access::{self, ProjectNav, audit_entry};
use crate::error::{UiError, UiResult};
use crate::format::project_url;
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

struct RuleRow {
    id: i64,
    description: String,
    disabled: bool,
    repo_decoration: &'static str,
    repo_pattern: String,
    tag_decoration: &'static str,
    tag_pattern: String,
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    chrome: Chrome,
    nav: ProjectNav,
    rows: Vec<RuleRow>,
    pager: Pager,
    subtab: &'static str,
    can_create: bool,
    can_update: bool,
    can_delete: bool,
}

/// `GET /projects/{project}/policy`.
pub(crate) async fn show(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
    if !access.allows("immutable-tag", "list") && access.allows("tag-retention", "list") {
        return Ok(layout::see_other(
            &project_url(&access.project.name, "/policy/retention"),
            None,
        ));
    }
    access::require(&access, "immutable-tag", "list")?;
    let page = query.page();
    let mut conn = services.pool.acquire().await?;
    let listing = list_rules(
        &mut conn,
        &RuleQuery {
            project_id: access.project.id,
            page,
            ..RuleQuery::default()
        },
    )
    .await?;
    let rows = listing
        .items
        .iter()
        .map(|r| RuleRow {
            id: r.id,
            description: r.describe(),
            disabled: r.spec.disabled,
            repo_decoration: repository_decoration(r.spec.repository.decoration),
            repo_pattern: r.spec.repository.pattern.as_str().to_owned(),
            tag_decoration: tag_decoration(r.spec.tag.decoration),
            tag_pattern: r.spec.tag.pattern.as_str().to_owned(),
        })
        .collect();
    let here = project_url(&access.project.name, "/policy");
    Ok(layout::ok(&PolicyPage {
        chrome: Chrome::new(
            &viewer,
            format!("{} · Policy", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(&access, &viewer, "policy"),
        rows,
        pager: Pager::new(&here, &[], page, listing.total),
        subtab: "immutable",
        can_create: access.allows("immutable-tag", "create"),
        can_update: access.allows("immutable-tag", "update"),
        can_delete: access.allows("immutable-tag", "delete"),
    }))
}

/// The audit entry the API writes for a rule change.
async fn record(
    tx: &mut sqlx::PgConnection,
    viewer: &Viewer,
    access: &ProjectAccess,
    operation: &str,
    rule: &ImmutableRule,
) -> UiResult<()> {
    let described = rule.describe();
    let description = format!(
        "{operation}d immutable tag {described} in project {}",
        access.project.name
    );
    let resource = format!("{}/{described}", access.project.name);
    audit::record(
        &mut *tx,
        &audit_entry(
            viewer,
            Some(access.project.id),
            operation,
            "immutable_tag_rule",
            &resource,
            &description,
        ),
    )
    .await?;
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct RuleForm {
    repo_decoration: String,
    repo_pattern: String,
    tag_decoration: String,
    tag_pattern: String,
}

impl RuleForm {
    /// The rule the form describes, with the settings it does not show.
    fn spec(
        &self,
        priority: i32,
        disabled: bool,
        params: Option<serde_json::Value>,
    ) -> UiResult<RuleSpec> {
        Ok(RuleSpec::parse(&RuleInput {
            priority,
            disabled,
            action: Some("immutable"),
            template: Some("immutable_template"),
            tag_selectors: vec![(
                "doublestar",
                self.tag_decoration.as_str(),
                self.tag_pattern.trim(),
            )],
            scope_selectors: vec![(
                "repository",
                vec![(
                    "doublestar",
                    self.repo_decoration.as_str(),
                    self.repo_pattern.trim(),
                )],
            )],
            params,
        })?)
    }
}

/// The rule `id` of the project, or "gone".
async fn existing_rule(
    services: &Services,
    access: &ProjectAccess,
    id: i64,
) -> UiResult<ImmutableRule> {
    match get_rule(services.pool.get_ref(), access.project.id, id).await {
        Ok(rule) => Ok(rule),
        Err(Error::NotFound) => Err(UiError::not_found("That rule is gone.")),
        Err(e) => Err(e.into()),
    }
}

/// `POST /projects/{project}/policy/immutable/{id}`: new selectors for a
/// rule (its state, priority and parameters stay).
pub(crate) async fn update(
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<RuleForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = project_url(&project, "/policy");
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &project).await?;
        access::require(&access, "immutable-tag", "update")?;
        let rule = existing_rule(&services, &access, id).await?;
        let spec = form.spec(
            rule.spec.priority,
            rule.spec.disabled,
            Some(rule.spec.params.clone()),
        )?;
        let mut tx = services.pool.begin().await?;
        let updated = match update_rule(&mut *tx, access.project.id, id, &spec).await {
            Err(Error::Conflict(_)) => {
                return Err(UiError::BadRequest(
                    "The project already has a rule with these selectors.".into(),
                ));
            }
            Err(Error::NotFound) => return Err(UiError::not_found("That rule is gone.")),
            other => other?,
        };
        record(&mut tx, &viewer, &access, "update", &updated).await?;
        tx.commit().await?;
        Ok(layout::see_other(&back, Some("Immutable tag rule saved.")))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("rule-{id}")))
}

#[derive(Deserialize)]
pub(crate) struct EnabledForm {
    enabled: Option<String>,
}

/// `POST /projects/{project}/policy/immutable/{id}/enabled`: a disabled
/// rule protects nothing until it is enabled again.
pub(crate) async fn set_enabled(
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<EnabledForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = project_url(&project, "/policy");
    let enabled = form.enabled.as_deref() == Some("true");
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &project).await?;
        access::require(&access, "immutable-tag", "update")?;
        let rule = existing_rule(&services, &access, id).await?;
        let spec = RuleSpec {
            disabled: !enabled,
            ..rule.spec
        };
        let mut tx = services.pool.begin().await?;
        let updated = match update_rule(&mut *tx, access.project.id, id, &spec).await {
            Err(Error::NotFound) => return Err(UiError::not_found("That rule is gone.")),
            other => other?,
        };
        record(&mut tx, &viewer, &access, "update", &updated).await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(if enabled {
                "Immutable tag rule enabled."
            } else {
                "Immutable tag rule disabled."
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("rule-{id}")))
}

/// `POST /projects/{project}/policy/immutable`.
pub(crate) async fn create(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<RuleForm>,
) -> HttpResponse {
    let back = project_url(&path, "/policy");
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
        access::require(&access, "immutable-tag", "create")?;
        let spec = form.spec(0, false, None)?;
        let mut tx = services.pool.begin().await?;
        let rule = match create_rule(&mut tx, access.project.id, &spec).await {
            Err(Error::Conflict(_)) => {
                return Err(UiError::BadRequest(
                    "The project already has a rule with these selectors.".into(),
                ));
            }
            other => other?,
        };
        record(&mut tx, &viewer, &access, "create", &rule).await?;
        tx.commit().await?;
        Ok(layout::see_other(&back, Some("Immutable tag rule added.")))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "create-rule"))
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    confirm: Option<String>,
}

/// `POST /projects/{project}/policy/immutable/{id}/delete`.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<DeleteForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = project_url(&project, "/policy");
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &project).await?;
        access::require(&access, "immutable-tag", "delete")?;
        let rule = existing_rule(&services, &access, id).await?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Delete the immutable tag {}?", rule.describe()),
            &back,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        delete_rule(&mut *tx, access.project.id, id).await?;
        record(&mut tx, &viewer, &access, "delete", &rule).await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some("Immutable tag rule deleted."),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("rule-{id}")))
}
