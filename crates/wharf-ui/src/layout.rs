//! What every page shares: the [`Chrome`] the base layout draws (title,
//! navigation, the signed-in user, the CSRF token for the sign-out form, the
//! message left by the last action), rendering with the console's headers,
//! and the redirect that follows a successful form.

use actix_web::HttpResponse;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use askama::Template;

use crate::session::Viewer;

/// The cookie carrying the message shown once after a redirect.
pub(crate) const FLASH_COOKIE: &str = "wharf_flash";

/// The parts of the base layout that depend on who is looking.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The `<title>` and the page's heading.
    pub title: String,
    /// The top-level section to highlight: `projects`, `admin`, `account`.
    pub section: &'static str,
    /// Who is signed in, if anybody.
    pub username: Option<String>,
    /// Whether to show the Administration section.
    pub sysadmin: bool,
    /// This session's CSRF token (empty when nobody is signed in).
    pub csrf: String,
    /// The outcome of the previous action, shown once.
    pub flash: Option<Flash>,
    /// The stylesheet and script URLs (with their content hashes).
    pub css: String,
    pub js: String,
    pub favicon: String,
}

impl Chrome {
    /// The layout for a signed-in viewer.
    pub fn new(viewer: &Viewer, title: impl Into<String>, section: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            username: Some(viewer.user.username.clone()),
            sysadmin: viewer.user.sysadmin,
            csrf: viewer.csrf.clone(),
            flash: viewer.flash.clone(),
            ..Chrome::bare("")
        }
    }

    /// The layout for pages without a viewer (sign-in, errors).
    pub fn bare(title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            section: "",
            username: None,
            sysadmin: false,
            csrf: String::new(),
            flash: None,
            css: crate::assets::url("wharf.css"),
            js: crate::assets::url("wharf.js"),
            favicon: crate::assets::url("favicon.svg"),
        }
    }
}

impl Chrome {
    /// The success message of the previous action, for the top of the page.
    pub fn notice(&self) -> Option<&str> {
        self.flash
            .as_ref()
            .filter(|f| f.form.is_none())
            .map(|f| f.text.as_str())
    }

    /// The error the previous post of the form `form` caused, to show next
    /// to that form.
    pub fn error_for(&self, form: &str) -> Option<&str> {
        self.flash
            .as_ref()
            .filter(|f| f.form.as_deref() == Some(form))
            .map(|f| f.text.as_str())
    }

    /// An error whose form is not on this page: shown at the top instead.
    pub fn stray_error(&self, forms: &[&str]) -> Option<&str> {
        self.flash
            .as_ref()
            .filter(|f| f.form.as_deref().is_some_and(|name| !forms.contains(&name)))
            .map(|f| f.text.as_str())
    }
}

/// A message left for the next page: a success notice, or the error of the
/// form named `form`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub form: Option<String>,
    pub text: String,
}

/// Render `page` as an HTML answer with `status`. Pages hold private data
/// and a CSRF token, so they are never stored by caches; they may not be
/// framed (clickjacking) and scripts come only from Wharf itself.
pub fn html<T: Template>(status: StatusCode, page: &T) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                     script-src 'self'; frame-ancestors 'none'; form-action 'self'; \
                     base-uri 'none'",
                ),
            ))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Wharf could not render this page; the server log has the details.")
        }
    }
}

/// Render with 200.
pub fn ok<T: Template>(page: &T) -> HttpResponse {
    html(StatusCode::OK, page)
}

/// `303 See Other` to `location` (a path of the console), leaving `message`
/// to be shown once on the next page.
pub fn see_other(location: &str, message: Option<&str>) -> HttpResponse {
    redirect(
        location,
        message.map(|text| Flash {
            form: None,
            text: text.to_owned(),
        }),
    )
}

/// `303 See Other` back to the page of the form `form`, whose post failed
/// with `message`: the page shows it next to that form.
pub fn back_with_error(location: &str, form: &str, message: &str) -> HttpResponse {
    redirect(
        location,
        Some(Flash {
            form: Some(form.to_owned()),
            text: message.to_owned(),
        }),
    )
}

fn redirect(location: &str, flash: Option<Flash>) -> HttpResponse {
    let mut resp = HttpResponse::SeeOther();
    resp.insert_header((header::LOCATION, location.to_owned()))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if let Some(flash) = flash {
        resp.cookie(flash_cookie(&flash));
    }
    resp.finish()
}

fn flash_cookie(flash: &Flash) -> Cookie<'static> {
    // `o:text` for a notice, `e:form\ntext` for a form's error (form names
    // hold digests, so `:` cannot end them).
    let encoded = match &flash.form {
        None => format!("o:{}", flash.text),
        Some(form) => format!("e:{form}\n{}", flash.text),
    };
    let value: String = url::form_urlencoded::byte_serialize(encoded.as_bytes()).collect();
    Cookie::build(FLASH_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(60))
        .finish()
}

/// The cookie that removes a shown flash message.
pub(crate) fn flash_removal() -> Cookie<'static> {
    Cookie::build(FLASH_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::ZERO)
        .finish()
}

/// The message in a flash cookie's value.
pub(crate) fn flash_text(value: &str) -> Option<Flash> {
    let text: String = url::form_urlencoded::parse(format!("m={value}").as_bytes())
        .find(|(k, _)| k == "m")
        .map(|(_, v)| v.into_owned())?;
    // A message is a sentence Wharf wrote; anything long is not one.
    if text.is_empty() || text.len() > 600 {
        return None;
    }
    if let Some(rest) = text.strip_prefix("o:") {
        return Some(Flash {
            form: None,
            text: rest.to_owned(),
        });
    }
    let (form, message) = text.strip_prefix("e:")?.split_once('\n')?;
    Some(Flash {
        form: Some(form.to_owned()),
        text: message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_messages_survive_their_cookie() {
        for flash in [
            Flash {
                form: None,
                text: "Project team created.".into(),
            },
            Flash {
                form: Some("add-member".into()),
                text: "user: bob is already a member".into(),
            },
            Flash {
                form: Some("tags-sha256:0123abcd".into()),
                text: "denied: the tag is immutable".into(),
            },
        ] {
            let cookie = flash_cookie(&flash);
            assert_eq!(flash_text(cookie.value()), Some(flash));
        }
        assert_eq!(flash_text("x:nonsense"), None);
    }
}
