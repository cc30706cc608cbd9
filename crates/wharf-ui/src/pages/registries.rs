//! Administration → Registries: the replication endpoints (create, edit,
//! delete, **Test connection**), through [`Registries`], the same store
//! `/registries` uses; access is the API's system `registry` resource.
//! The secret is write-only: no page ever carries it back.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_replication::ReplicationError;
use wharf_replication::registries::{Registries, RegistryKind, RegistryRecord, RegistrySpec};

use super::{form_failed, ticked, unconfirmed};
use crate::access;
use crate::error::{UiError, UiResult};
use crate::format;
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

const REGISTRIES: &str = "/admin/registries";
const RESOURCE: &str = "registry";

pub(crate) struct RegistryRow {
    id: i64,
    name: String,
    kind: String,
    url: String,
    access_key: String,
    insecure: bool,
    status: String,
    badge: &'static str,
    checked: String,
    message: String,
}

impl From<&RegistryRecord> for RegistryRow {
    fn from(r: &RegistryRecord) -> Self {
        RegistryRow {
            id: r.id,
            name: r.name.clone(),
            kind: r.kind.clone(),
            url: r.url.clone(),
            access_key: r.access_key.clone().unwrap_or_default(),
            insecure: r.insecure,
            status: if r.status.is_empty() {
                "unknown".to_owned()
            } else {
                r.status.clone()
            },
            badge: match r.status.as_str() {
                "healthy" => "public",
                "unhealthy" => "danger",
                _ => "private",
            },
            checked: r.status_checked_at.map(format::time).unwrap_or_default(),
            message: r.status_message.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_registries.html")]
struct RegistriesPage {
    chrome: Chrome,
    tab: &'static str,
    rows: Vec<RegistryRow>,
    /// An error of a form not on this page (a row on another page).
    stray: Option<String>,
    pager: Pager,
    kinds: Vec<&'static str>,
    can_create: bool,
    can_update: bool,
    can_delete: bool,
    can_ping: bool,
}

/// `GET /admin/registries`.
pub(crate) async fn list(
    services: Services,
    viewer: Viewer,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, RESOURCE, "list")?;
    let all = services.registries()?.list().await?;
    let page = query.page();
    let size = page.page_size.max(1) as usize;
    let skip = (page.page.max(1) as usize - 1).saturating_mul(size);
    let rows: Vec<RegistryRow> = all
        .iter()
        .skip(skip)
        .take(size)
        .map(RegistryRow::from)
        .collect();
    let chrome = Chrome::new(&viewer, "Registries", "admin");
    let mut forms: Vec<String> = rows.iter().map(|r| format!("registry-{}", r.id)).collect();
    forms.push("create-registry".into());
    let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    let stray = chrome.stray_error(&forms).map(str::to_owned);
    let principal = viewer.principal();
    Ok(layout::ok(&RegistriesPage {
        chrome,
        tab: "registries",
        rows,
        stray,
        pager: Pager::new(REGISTRIES, &[], page, all.len() as i64),
        kinds: RegistryKind::ALL.iter().map(|k| k.as_str()).collect(),
        can_create: principal.can_system(RESOURCE, "create"),
        can_update: principal.can_system(RESOURCE, "update"),
        can_delete: principal.can_system(RESOURCE, "delete"),
        can_ping: principal.can_system(RESOURCE, "read"),
    }))
}

#[derive(Deserialize)]
pub(crate) struct RegistryForm {
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    access_key: String,
    /// Write-only: empty keeps the stored one on an edit.
    #[serde(default)]
    access_secret: String,
    insecure: Option<String>,
}

/// The domain refuses a taken name only on create (as a database error on
/// update), so the console checks first, as `/registries` does.
async fn name_free(registries: &Registries, name: &str, except: Option<i64>) -> UiResult<()> {
    let all = registries.list().await?;
    if all.iter().any(|r| r.name == name && Some(r.id) != except) {
        return Err(UiError::BadRequest(format!(
            "A registry named {name} already exists."
        )));
    }
    Ok(())
}

fn spec_of(form: &RegistryForm, kind: RegistryKind) -> RegistrySpec {
    let filled = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    RegistrySpec {
        name: form.name.trim().to_owned(),
        kind,
        url: form.url.trim().to_owned(),
        description: form.description.trim().to_owned(),
        access_key: filled(&form.access_key),
        // Secrets are taken as typed: spaces may be part of one.
        access_secret: Some(form.access_secret.clone()).filter(|s| !s.is_empty()),
        insecure: ticked(&form.insecure),
    }
}

/// `POST /admin/registries`.
pub(crate) async fn create(
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<RegistryForm>,
) -> HttpResponse {
    let done = async {
        access::require_system(&viewer, RESOURCE, "create")?;
        let registries = services.registries()?;
        let spec = spec_of(&form, RegistryKind::parse(form.kind.trim())?);
        name_free(registries, &spec.name, None).await?;
        let created = registries.create(&spec).await?;
        Ok(layout::see_other(
            REGISTRIES,
            Some(&format!(
                "Registry {} created: test its connection.",
                created.name
            )),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, REGISTRIES, "create-registry"))
}

async fn existing(registries: &Registries, id: i64) -> UiResult<RegistryRecord> {
    registries
        .get(id)
        .await?
        .ok_or_else(|| UiError::not_found(format!("There is no registry {id}.")))
}

#[derive(Template)]
#[template(path = "admin_registry.html")]
struct EditPage {
    chrome: Chrome,
    tab: &'static str,
    r: RegistryRow,
    description: String,
}

/// `GET /admin/registries/{id}`: the edit form.
pub(crate) async fn show(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, RESOURCE, "update")?;
    let record = existing(services.registries()?, path.into_inner()).await?;
    Ok(layout::ok(&EditPage {
        chrome: Chrome::new(&viewer, format!("Registry {}", record.name), "admin"),
        tab: "registries",
        description: record.description.clone(),
        r: RegistryRow::from(&record),
    }))
}

/// `POST /admin/registries/{id}`: the secret stays unless a new one is typed.
pub(crate) async fn update(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<RegistryForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let back = format!("{REGISTRIES}/{id}");
    let done = async {
        access::require_system(&viewer, RESOURCE, "update")?;
        let registries = services.registries()?;
        let current = existing(registries, id).await?;
        // The type of an endpoint is fixed, as in Harbor's API.
        let spec = spec_of(&form, RegistryKind::parse(&current.kind)?);
        name_free(registries, &spec.name, Some(id)).await?;
        registries
            .update(id, &spec)
            .await?
            .ok_or_else(|| UiError::not_found(format!("There is no registry {id}.")))?;
        Ok(layout::see_other(
            REGISTRIES,
            Some(&format!("Registry {} saved.", spec.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "edit-registry"))
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    confirm: Option<String>,
}

/// `POST /admin/registries/{id}/delete`: refused while a policy or a
/// proxy-cache project uses the endpoint.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        access::require_system(&viewer, RESOURCE, "delete")?;
        let registries = services.registries()?;
        let record = existing(registries, id).await?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Delete the registry {}?", record.name),
            REGISTRIES,
        ) {
            return Ok(page);
        }
        let users =
            wharf_replication::policies::policies_using_registry(registries.pool(), id).await?;
        if users > 0 {
            return Err(UiError::BadRequest(format!(
                "{} is used by {users} replication policies: delete or change them first.",
                record.name
            )));
        }
        match registries.delete(id).await {
            Ok(true) => {}
            Ok(false) => return Err(UiError::not_found(format!("There is no registry {id}."))),
            Err(ReplicationError::Database(sqlx::Error::Database(d)))
                if d.is_foreign_key_violation() =>
            {
                return Err(UiError::BadRequest(format!(
                    "{} is the upstream of a proxy-cache project: delete that project first.",
                    record.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(layout::see_other(
            REGISTRIES,
            Some(&format!("Registry {} deleted.", record.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, REGISTRIES, &format!("registry-{id}")))
}

/// `POST /admin/registries/{id}/ping`: **Test connection**; the health it
/// finds is kept with the endpoint and shown in its row.
pub(crate) async fn ping(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(_): PostedForm<ConfirmForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        access::require_system(&viewer, RESOURCE, "read")?;
        let record = services
            .registries()?
            .ping(id)
            .await?
            .ok_or_else(|| UiError::not_found(format!("There is no registry {id}.")))?;
        if record.status == "healthy" {
            Ok(layout::see_other(
                REGISTRIES,
                Some(&format!("{} is healthy.", record.name)),
            ))
        } else {
            // The row shows the whole message; the notice only its start
            // (it travels in a cookie).
            let message: String = record.status_message.chars().take(300).collect();
            Err(UiError::BadRequest(format!(
                "{} is unhealthy: {message}",
                record.name
            )))
        }
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, REGISTRIES, &format!("registry-{id}")))
}
