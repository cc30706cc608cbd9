//! Harbor's repository and tag selectors: doublestar patterns with an
//! include or exclude decision, as used by tag immutability, tag retention
//! and (later) replication filters.
//!
//! A pattern matches the whole text. `*` matches any run of characters
//! except `/`; `**` matches any run including `/`; `?` one character except
//! `/`; `{a,b,c}` any of the alternatives (which may themselves hold
//! wildcards); `[abc]`, `[a-z]` and `[!a-z]` one character of a class.
//! Everything else matches itself.

use crate::error::{Error, Result};

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    alternatives: Vec<Vec<Token>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`
    AnyChar,
    /// `*`
    Star,
    /// `**`
    DoubleStar,
    /// `[...]`: ranges, negated or not.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Pattern {
    /// Compile `pattern`; an unclosed `[` or `{` is an error naming it.
    pub fn parse(pattern: &str) -> Result<Pattern> {
        let alternatives = expand_braces(pattern)?
            .iter()
            .map(|alt| tokens(alt, pattern))
            .collect::<Result<Vec<_>>>()?;
        Ok(Pattern {
            source: pattern.to_owned(),
            alternatives,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        self.alternatives
            .iter()
            .any(|tokens| match_tokens(tokens, &chars))
    }
}

/// `a{b,c{d,e}}f` → `abf`, `acdf`, `acef`. Braces nest; commas outside
/// braces are literal.
fn expand_braces(pattern: &str) -> Result<Vec<String>> {
    let chars: Vec<char> = pattern.chars().collect();
    let Some(open) = chars.iter().position(|&c| c == '{') else {
        return Ok(vec![pattern.to_owned()]);
    };
    let mut depth = 0;
    let mut close = None;
    let mut splits = Vec::new();
    for (i, &c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => splits.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return Err(Error::Invalid(format!(
            "pattern {pattern:?} has a '{{' without its '}}'"
        )));
    };
    let prefix: String = chars[..open].iter().collect();
    let suffix: String = chars[close + 1..].iter().collect();
    let mut bounds = vec![open];
    bounds.extend(&splits);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let middle: String = chars[pair[0] + 1..pair[1]].iter().collect();
        for expanded in expand_braces(&format!("{prefix}{middle}{suffix}"))? {
            out.push(expanded);
        }
    }
    Ok(out)
}

fn tokens(alternative: &str, source: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = alternative.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                out.push(Token::DoubleStar);
                i += 2;
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                continue;
            }
            '*' => out.push(Token::Star),
            '?' => out.push(Token::AnyChar),
            '[' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .map(|p| i + 1 + p)
                    .ok_or_else(|| {
                        Error::Invalid(format!("pattern {source:?} has a '[' without its ']'"))
                    })?;
                let mut body = &chars[i + 1..end];
                let negated = matches!(body.first(), Some('!' | '^'));
                if negated {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < body.len() {
                    if j + 2 < body.len() && body[j + 1] == '-' {
                        ranges.push((body[j], body[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((body[j], body[j]));
                        j += 1;
                    }
                }
                out.push(Token::Class { negated, ranges });
                i = end + 1;
                continue;
            }
            c => out.push(Token::Literal(c)),
        }
        i += 1;
    }
    Ok(out)
}

/// Backtracking match of `tokens` against all of `text`, memoised on
/// (token, position) so hostile patterns stay polynomial.
fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    let mut memo = vec![None; (tokens.len() + 1) * (text.len() + 1)];
    match_from(tokens, text, 0, 0, &mut memo)
}

fn match_from(
    tokens: &[Token],
    text: &[char],
    t: usize,
    s: usize,
    memo: &mut Vec<Option<bool>>,
) -> bool {
    let key = t * (text.len() + 1) + s;
    if let Some(known) = memo[key] {
        return known;
    }
    let result = match tokens.get(t) {
        None => s == text.len(),
        Some(Token::Literal(c)) => {
            text.get(s) == Some(c) && match_from(tokens, text, t + 1, s + 1, memo)
        }
        Some(Token::AnyChar) => {
            text.get(s).is_some_and(|&c| c != '/') && match_from(tokens, text, t + 1, s + 1, memo)
        }
        Some(Token::Class { negated, ranges }) => {
            text.get(s).is_some_and(|&c| {
                c != '/' && ranges.iter().any(|&(a, b)| a <= c && c <= b) != *negated
            }) && match_from(tokens, text, t + 1, s + 1, memo)
        }
        Some(Token::Star) => {
            let mut end = s;
            loop {
                if match_from(tokens, text, t + 1, end, memo) {
                    break true;
                }
                if end == text.len() || text[end] == '/' {
                    break false;
                }
                end += 1;
            }
        }
        Some(Token::DoubleStar) => {
            (s..=text.len()).any(|end| match_from(tokens, text, t + 1, end, memo))
        }
    };
    memo[key] = Some(result);
    result
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
