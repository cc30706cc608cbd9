//! How values read on a page: sizes, times, digests, URLs of console pages.
//! Templates get strings already formatted, so the same value reads the same
//! on every page.

use chrono::{DateTime, Utc};

/// `10485760` → `10.0 MiB`.
pub fn size(bytes: i64) -> String {
    wharf_projects::quotas::human_size(bytes)
}

/// `2026-01-02 15:04 UTC`.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// RFC 3339, for `<time datetime>`.
pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A time or a dash for never.
pub fn maybe_time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), time)
}

/// The badge class of a job's or task's status (`Success`, `Error`,
/// `Running`, ...): green for done, red for failed, amber while going.
pub fn status_badge(status: &str) -> &'static str {
    match status {
        "Success" => "public",
        "Error" => "danger",
        "Pending" | "Running" | "Stopping" => "warn",
        _ => "private",
    }
}

/// `sha256:0123456789abcdef…` → `sha256:0123456789ab`.
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", &hex[..hex.len().min(12)]),
        None => digest.chars().take(19).collect(),
    }
}

/// A query value, percent-encoded.
pub fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A path segment: everything but RFC 3986's unreserved characters, `:`
/// and `@` percent-encoded (names and digests never need it; a hand-made
/// name still cannot break out of its segment).
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The console URL of a project page (`/projects/<name>` plus `rest`).
pub fn project_url(project: &str, rest: &str) -> String {
    format!("/projects/{}{rest}", seg(project))
}

/// The console URL of a repository (`project/a/b`): its path segments are
/// kept, each encoded.
pub fn repository_url(full_name: &str) -> String {
    let (project, repo) = full_name.split_once('/').unwrap_or((full_name, ""));
    let segments: Vec<String> = repo.split('/').map(seg).collect();
    format!(
        "{}/repositories/{}",
        project_url(project, ""),
        segments.join("/")
    )
}

/// The console URL of an artifact, by digest.
pub fn artifact_url(full_name: &str, digest: &str) -> String {
    format!("{}/-/artifacts/{}", repository_url(full_name), seg(digest))
}

/// Where to go back to after signing in: only a path of this site (never
/// `//host` or `https://…`, which would make the sign-in page an open
/// redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
            n.to_owned()
        }
        _ => "/projects".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_shorten_to_twelve_hex_digits() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123456789abcdef"),
            "sha256:0123456789ab"
        );
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
    }

    #[test]
    fn console_urls_encode_each_segment() {
        assert_eq!(
            repository_url("team/a/b c"),
            "/projects/team/repositories/a/b%20c"
        );
        assert_eq!(
            artifact_url("team/app", "sha256:ab"),
            "/projects/team/repositories/app/-/artifacts/sha256:ab"
        );
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/projects/x?page=2")), "/projects/x?page=2");
        assert_eq!(safe_next(Some("//evil.example/")), "/projects");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/projects");
        assert_eq!(safe_next(Some("https://evil.example/")), "/projects");
        assert_eq!(safe_next(None), "/projects");
    }
}
