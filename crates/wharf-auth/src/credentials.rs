//! The `Authorization` header, read once.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// What the client presented.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// `Basic base64(name:secret)`.
    Basic { name: String, secret: String },
    /// `Bearer <token>`.
    Bearer(String),
    /// Some other scheme, or a value that cannot be read.
    Unreadable,
}

// Secrets must never reach a log through a `{:?}`.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { name, .. } => write!(f, "Basic({name}, [redacted])"),
            Credentials::Bearer(_) => f.write_str("Bearer([redacted])"),
            Credentials::Unreadable => f.write_str("Unreadable"),
        }
    }
}

impl Credentials {
    /// The request's credentials, `None` without an `Authorization` header.
    pub(crate) fn of(req: &HttpRequest) -> Option<Credentials> {
        let value = req.headers().get(header::AUTHORIZATION)?;
        let Ok(value) = value.to_str() else {
            return Some(Credentials::Unreadable);
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        Some(if scheme.eq_ignore_ascii_case("basic") {
            decode_basic(rest).unwrap_or(Credentials::Unreadable)
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Credentials::Bearer(rest.to_owned())
        } else {
            Credentials::Unreadable
        })
    }
}

fn decode_basic(encoded: &str) -> Option<Credentials> {
    let bytes = STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (name, secret) = text.split_once(':')?;
    Some(Credentials::Basic {
        name: name.to_owned(),
        secret: secret.to_owned(),
    })
}
