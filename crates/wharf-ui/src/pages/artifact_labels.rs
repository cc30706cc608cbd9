//! Labels on an artifact: attach a project or global label, detach one
//! (the API's `artifact-label` permissions in the project), through
//! `wharf_projects::labels::{attach_label, detach_label}` with the audit
//! entries `/artifacts/{reference}/labels` writes.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use wharf_projects::labels::{AttachError, attach_label, detach_label};
use wharf_projects::{Error, audit};

use super::form_failed;
use super::repositories::named_artifact;
use crate::access::audit_entry;
use crate::error::UiError;
use crate::format;
use crate::layout;
use crate::session::{PostedForm, Services, Viewer};

#[derive(Deserialize)]
pub(crate) struct LabelForm {
    /// The repository's full name.
    repository: String,
    digest: String,
    label: String,
    /// The page to return to.
    back: Option<String>,
}

impl LabelForm {
    fn label_id(&self) -> Result<i64, UiError> {
        self.label
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| UiError::BadRequest("Choose a label.".into()))
    }
}

/// `POST /projects/{project}/artifacts/labels/attach`.
pub(crate) async fn attach(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<LabelForm>,
) -> HttpResponse {
    let back = format::safe_next(form.back.as_deref());
    let done = async {
        let (access, _, artifact) = named_artifact(
            &services,
            &viewer,
            &path,
            (&form.repository, &form.digest),
            ("artifact-label", "create"),
        )
        .await?;
        let label_id = form.label_id()?;
        let resource = format!("{}@{}", artifact.repository_name, artifact.digest);
        let mut tx = services.pool.begin().await?;
        let label = match attach_label(&mut *tx, artifact.id, label_id).await {
            Ok(label) => label,
            Err(AttachError::ArtifactNotFound) => {
                return Err(UiError::not_found("The artifact is gone."));
            }
            Err(AttachError::LabelNotFound) => {
                return Err(UiError::not_found("That label is gone."));
            }
            Err(AttachError::AlreadyAttached) => {
                return Err(UiError::BadRequest(
                    "The artifact already carries that label.".into(),
                ));
            }
            Err(AttachError::Other(e)) => return Err(e.into()),
        };
        let description = format!("added label {} (id {label_id}) to {resource}", label.name);
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(access.project.id),
                "create",
                "artifact-label",
                &resource,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!("Label {} attached.", label.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("labels-{}", form.digest)))
}

/// `POST /projects/{project}/artifacts/labels/detach`: nothing is lost
/// (the label stays, and can be attached again), so it does not ask first.
pub(crate) async fn detach(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<LabelForm>,
) -> HttpResponse {
    let back = format::safe_next(form.back.as_deref());
    let done = async {
        let (access, _, artifact) = named_artifact(
            &services,
            &viewer,
            &path,
            (&form.repository, &form.digest),
            ("artifact-label", "delete"),
        )
        .await?;
        let label_id = form.label_id()?;
        let resource = format!("{}@{}", artifact.repository_name, artifact.digest);
        let mut tx = services.pool.begin().await?;
        let label = match detach_label(&mut *tx, artifact.id, label_id).await {
            Err(Error::NotFound) => {
                return Err(UiError::not_found(
                    "That label is not on the artifact any more.",
                ));
            }
            other => other?,
        };
        let description = format!(
            "removed label {} (id {label_id}) from {resource}",
            label.name
        );
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(access.project.id),
                "delete",
                "artifact-label",
                &resource,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!("Label {} detached.", label.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("labels-{}", form.digest)))
}
