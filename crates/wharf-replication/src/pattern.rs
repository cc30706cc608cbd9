//! Doublestar patterns of Harbor's replication filters, kept in this crate
//! so it does not depend on the project service (which depends on it for
//! the REST API and the event triggers).
//!
//! A pattern matches the whole text: `*` any run without `/`, `**` any run,
//! `?` one character but `/`, `{a,b}` alternatives (nesting allowed),
//! `[a-z]`/`[!a-z]` a character class; anything else itself.

use std::fmt;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Char(char),
    One,
    Segment,
    Any,
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern: the brace-free alternatives it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    alternatives: Vec<Vec<Piece>>,
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        let mut alternatives = Vec::new();
        for alt in expand(source)? {
            alternatives.push(compile(&alt)?);
        }
        Ok(Self { alternatives })
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.alternatives.iter().any(|p| matches_at(p, &text))
    }
}

/// Expand the first top-level brace group, then recurse on each result.
fn expand(source: &str) -> Result<Vec<String>, PatternError> {
    let Some(open) = source.find('{') else {
        if source.contains('}') {
            return Err(PatternError(format!(
                "{source:?} has a '}}' without its '{{'"
            )));
        }
        return Ok(vec![source.to_owned()]);
    };
    let (head, rest) = source.split_at(open);
    let mut depth = 0usize;
    let mut options = vec![String::new()];
    let mut tail = None;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    tail = Some(&rest[i + 1..]);
                    break;
                }
            }
            ',' if depth == 1 => {
                options.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = options.last_mut() {
            last.push(c);
        }
    }
    let tail =
        tail.ok_or_else(|| PatternError(format!("{source:?} has a '{{' without its '}}'")))?;
    let mut out = Vec::new();
    for option in options {
        out.extend(expand(&format!("{head}{option}{tail}"))?);
    }
    Ok(out)
}

fn compile(alt: &str) -> Result<Vec<Piece>, PatternError> {
    let chars: Vec<char> = alt.chars().collect();
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                let mut n = 0;
                while chars.get(i) == Some(&'*') {
                    n += 1;
                    i += 1;
                }
                pieces.push(if n >= 2 { Piece::Any } else { Piece::Segment });
                continue;
            }
            '?' => pieces.push(Piece::One),
            '[' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or_else(|| PatternError(format!("{alt:?} has a '[' without its ']'")))?
                    + i
                    + 1;
                let mut body = &chars[i + 1..close];
                let negated = matches!(body.first(), Some('!' | '^'));
                if negated {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < body.len() {
                    if body.get(j + 1) == Some(&'-') && j + 2 < body.len() {
                        ranges.push((body[j], body[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((body[j], body[j]));
                        j += 1;
                    }
                }
                pieces.push(Piece::Set { negated, ranges });
                i = close;
            }
            c => pieces.push(Piece::Char(c)),
        }
        i += 1;
    }
    Ok(pieces)
}

/// Dynamic programming over (piece, position): linear in their product,
/// whatever the pattern, so a hostile filter cannot stall planning.
fn matches_at(pieces: &[Piece], text: &[char]) -> bool {
    // reach[s]: the pieces so far can consume exactly text[..s].
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for piece in pieces {
        let mut next = vec![false; text.len() + 1];
        match piece {
            Piece::Any => {
                let mut on = false;
                for s in 0..=text.len() {
                    on |= reach[s];
                    next[s] = on;
                }
            }
            Piece::Segment => {
                let mut on = false;
                for s in 0..=text.len() {
                    on |= reach[s];
                    next[s] = on;
                    if s < text.len() && text[s] == '/' {
                        on = false;
                    }
                }
            }
            single => {
                for s in 0..text.len() {
                    if reach[s] && accepts(single, text[s]) {
                        next[s + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[text.len()]
}

fn accepts(piece: &Piece, c: char) -> bool {
    match piece {
        Piece::Char(p) => *p == c,
        Piece::One => c != '/',
        Piece::Set { negated, ranges } => {
            c != '/' && ranges.iter().any(|&(a, b)| a <= c && c <= b) != *negated
        }
        Piece::Any | Piece::Segment => true,
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, t: &str) -> bool {
        Pattern::parse(p).unwrap().matches(t)
    }

    #[test]
    fn doublestar_semantics() {
        assert!(m("library/**", "library/a/b") && m("library/**", "library/"));
        assert!(!m("library/*", "library/a/b") && m("library/*", "library/a"));
        assert!(m("v*", "v1.2") && !m("v*", "1.2"));
        assert!(m("{1.0,2.0}", "2.0") && !m("{1.0,2.0}", "1.0,2.0"));
        assert!(m("a{b,c{d,e}}f", "acef") && !m("a{b,c{d,e}}f", "acf"));
        assert!(m("v[0-9].?", "v1.x") && !m("v[!0-9]", "v1"));
        assert!(m("**/app", "x/y/app") && !m("*/app", "x/y/app"));
        assert!(Pattern::parse("[abc").is_err() && Pattern::parse("{a,b").is_err());
        let hostile = format!("*{}b", "a*".repeat(30));
        assert!(!m(&hostile, &"a".repeat(200)));
    }
}
