//! Harbor's replication policy filters (name and tag doublestar patterns)
//! and destination naming (namespace and flattening).

use crate::pattern::Pattern;

use crate::client::ReplicationError;

/// The name and tag filters of a policy; an absent filter matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    name: Option<Pattern>,
    tag: Option<Pattern>,
}

impl Filters {
    /// `name` like `library/**`, `tag` like `v*` or `{1.0,2.0}`.
    pub fn new(name: Option<&str>, tag: Option<&str>) -> Result<Self, ReplicationError> {
        let parse = |p: Option<&str>| {
            p.filter(|p| !p.is_empty())
                .map(|p| {
                    Pattern::parse(p).map_err(|e| {
                        ReplicationError::Invalid(format!("invalid filter pattern {p:?}: {e}"))
                    })
                })
                .transpose()
        };
        Ok(Self {
            name: parse(name)?,
            tag: parse(tag)?,
        })
    }

    pub fn repository(&self, name: &str) -> bool {
        self.name.as_ref().is_none_or(|p| p.matches(name))
    }

    pub fn tag(&self, tag: &str) -> bool {
        self.tag.as_ref().is_none_or(|p| p.matches(tag))
    }
}

/// Where `repository` lands, Harbor's way: `replace_count` leading path
/// components are dropped (`-1` flattens to the last component; the last
/// is always kept), then `namespace`, if any, is put in front.
///
/// ```
/// use wharf_replication::destination_repository as dest;
/// assert_eq!(dest("a/b/c", Some("dr"), 0), "dr/a/b/c");
/// assert_eq!(dest("a/b/c", Some("dr"), 1), "dr/b/c");
/// assert_eq!(dest("a/b/c", Some("dr"), -1), "dr/c");
/// assert_eq!(dest("a/b/c", None, 1), "b/c");
/// assert_eq!(dest("a/b", Some("dr"), 5), "dr/b");
/// ```
pub fn destination_repository(
    repository: &str,
    namespace: Option<&str>,
    replace_count: i32,
) -> String {
    let parts: Vec<&str> = repository.split('/').collect();
    let drop = if replace_count < 0 {
        parts.len() - 1
    } else {
        (replace_count as usize).min(parts.len() - 1)
    };
    let rest = parts[drop..].join("/");
    match namespace
        .map(|n| n.trim_matches('/'))
        .filter(|n| !n.is_empty())
    {
        Some(ns) => format!("{ns}/{rest}"),
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_harbor_patterns() {
        let f = Filters::new(Some("library/**"), Some("{1.0,2.0}")).unwrap();
        assert!(f.repository("library/app"));
        assert!(f.repository("library/team/app"));
        assert!(!f.repository("other/app"));
        assert!(f.tag("1.0") && f.tag("2.0") && !f.tag("3.0"));
        let v = Filters::new(None, Some("v*")).unwrap();
        assert!(v.repository("anything") && v.tag("v1.2") && !v.tag("latest"));
        assert!(Filters::new(Some("[abc"), None).is_err());
    }
}
