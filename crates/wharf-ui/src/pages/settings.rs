//! Administration → Configuration: the effective system settings an
//! administrator cares about, read-only. Wharf has no system settings that
//! change at run time (Harbor's `/configurations`): each is a key of the
//! configuration file or a `WHARF_*` variable, read at start-up, so the
//! page says which key sets it instead of offering a form.

use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::access;
use crate::error::UiResult;
use crate::format;
use crate::layout::{self, Chrome};
use crate::session::{Services, Viewer};

/// One setting: what it is, its value, and the key that sets it.
struct Setting {
    name: &'static str,
    value: String,
    key: &'static str,
}

#[derive(Template)]
#[template(path = "admin_settings.html")]
struct SettingsPage {
    chrome: Chrome,
    tab: &'static str,
    settings: Vec<Setting>,
}

fn duration(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 && s > 0 => format!("{} day(s)", s / 86_400),
        s if s % 3_600 == 0 && s > 0 => format!("{} hour(s)", s / 3_600),
        s if s % 60 == 0 && s > 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} second(s)"),
    }
}

/// `GET /admin/settings`.
pub(crate) async fn show(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, "configuration", "read")?;
    let api = services.api.get_ref();
    let auth = services.auth.config();
    let limit = if api.default_storage_limit < 0 {
        "unlimited".to_owned()
    } else {
        format::size(api.default_storage_limit)
    };
    let settings = vec![
        Setting {
            name: "External URL",
            value: api.external_url.clone().unwrap_or_else(|| {
                format!(
                    "not set (the console uses {})",
                    services.registry_host(&req)
                )
            }),
            key: "external_url",
        },
        Setting {
            name: "Version",
            value: api.version.clone(),
            key: "",
        },
        Setting {
            name: "Blob storage",
            value: api.storage_provider.clone(),
            key: "storage.type",
        },
        Setting {
            name: "Storage limit of new projects",
            value: limit,
            key: "projects.default_storage_limit",
        },
        Setting {
            name: "Robot account prefix",
            value: api.robot_prefix.clone(),
            key: "auth.robot_prefix",
        },
        Setting {
            name: "Console session idle timeout",
            value: duration(auth.session_lifetime_secs),
            key: "auth.session_lifetime_secs",
        },
        Setting {
            name: "Registry token lifetime",
            value: duration(auth.token_lifetime_secs),
            key: "auth.token_lifetime_secs",
        },
        Setting {
            name: "Token service and issuer",
            value: format!("{} · {}", auth.service, auth.issuer),
            key: "auth.service, auth.issuer",
        },
        Setting {
            name: "Trusted proxies",
            value: if auth.trusted_proxies.is_empty() {
                "none".to_owned()
            } else {
                auth.trusted_proxies.join(", ")
            },
            key: "auth.trusted_proxies",
        },
    ];
    Ok(layout::ok(&SettingsPage {
        chrome: Chrome::new(&viewer, "Configuration", "admin"),
        tab: "settings",
        settings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_largest_whole_unit() {
        assert_eq!(duration(86_400 * 2), "2 day(s)");
        assert_eq!(duration(7_200), "2 hour(s)");
        assert_eq!(duration(1_800), "30 minute(s)");
        assert_eq!(duration(90), "90 second(s)");
    }
}
