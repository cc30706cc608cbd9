//! Harbor's repository and tag selectors: doublestar patterns with an
//! include or exclude decision, as used by tag immutability, tag retention
//! and replication filters.
//!
//! A pattern matches the whole text. `*` matches any run of characters
//! except `/`; `**` matches any run including `/`; `?` one character except
//! `/`; `{a,b,c}` any of the alternatives (which may themselves hold
//! wildcards); `[abc]`, `[a-z]` and `[!a-z]` one character of a class.
//! Everything else matches itself.

use crate::error::{Error, Result};

/// A compiled pattern: wharf-replication's matcher (the one replication
/// filters use, so every Harbor selector behaves alike), with the pattern
/// as written kept for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    compiled: wharf_replication::pattern::Pattern,
}

impl Pattern {
    /// Compile `pattern`; an unclosed `[` or `{` is an error naming it.
    pub fn parse(pattern: &str) -> Result<Pattern> {
        let compiled = wharf_replication::pattern::Pattern::parse(pattern)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(Pattern {
            source: pattern.to_owned(),
            compiled,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        self.compiled.matches(text)
    }
}

/// Whether a selector keeps what matches it or everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoration {
    /// Harbor's `matches` / `repoMatches`.
    Matches,
    /// Harbor's `excludes` / `repoExcludes`.
    Excludes,
}

impl Decoration {
    /// Parse Harbor's decoration words.
    pub fn parse(word: &str) -> Result<Decoration> {
        match word {
            "matches" | "repoMatches" => Ok(Decoration::Matches),
            "excludes" | "repoExcludes" => Ok(Decoration::Excludes),
            other => Err(Error::Invalid(format!(
                "selector decoration must be matches or excludes, not {other:?}"
            ))),
        }
    }
}

/// A pattern with its decoration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub decoration: Decoration,
    pub pattern: Pattern,
}

impl Selector {
    /// Compile a selector from Harbor's `decoration` and `pattern` fields.
    pub fn parse(decoration: &str, pattern: &str) -> Result<Selector> {
        Ok(Selector {
            decoration: Decoration::parse(decoration)?,
            pattern: Pattern::parse(pattern)?,
        })
    }

    /// Whether `text` is selected.
    pub fn selects(&self, text: &str) -> bool {
        self.pattern.matches(text) == (self.decoration == Decoration::Matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(text)
    }

    #[test]
    fn stars_stop_at_slashes_and_double_stars_do_not() {
        assert!(m("*", "app"));
        assert!(!m("*", "team/app"));
        assert!(m("**", "team/app"));
        assert!(m("**", ""));
        assert!(m("team/*", "team/app"));
        assert!(!m("team/*", "team/sub/app"));
        assert!(m("team/**", "team/sub/app"));
        assert!(m("**/app", "team/sub/app"));
        assert!(m("v*", "v1.2.3"));
        assert!(!m("v*", "latest"));
        assert!(m("v?.*", "v1.0"));
        assert!(!m("v?", "v10"));
    }

    #[test]
    fn braces_and_classes() {
        assert!(m("{1.0,2.0}", "1.0"));
        assert!(m("{1.0,2.0}", "2.0"));
        assert!(!m("{1.0,2.0}", "3.0"));
        assert!(m("release-{v*,rc{1,2}}", "release-rc2"));
        assert!(m("release-{v*,rc{1,2}}", "release-v9"));
        assert!(!m("release-{v*,rc{1,2}}", "release-rc3"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(Pattern::parse("{a,b").is_err());
        assert!(Pattern::parse("[ab").is_err());
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let pattern = "*a*a*a*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(200);
        assert!(!m(pattern, &text));
        assert!(!m(&"**a".repeat(20), &"a".repeat(19)));
    }

    #[test]
    fn selectors_include_or_exclude() {
        let keep = Selector::parse("matches", "v*").unwrap();
        let drop = Selector::parse("excludes", "v*").unwrap();
        assert!(keep.selects("v1") && !keep.selects("dev"));
        assert!(!drop.selects("v1") && drop.selects("dev"));
        assert!(Selector::parse("repoMatches", "**").unwrap().selects("a/b"));
        assert!(Selector::parse("sometimes", "x").is_err());
    }
}
