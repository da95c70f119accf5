//! Bearer tokens and what they may do.
//!
//! Tokens come from a file or an environment variable, one entry per line
//! (the variable may also separate entries with commas): the token, then
//! optionally its role — `read` (GET only) or `write` (everything; the
//! default). Blank lines and lines starting with `#` are skipped. A token is
//! compared with each known token in time that does not depend on where they
//! differ, and tokens never appear in logs or errors.

use std::fmt;
use std::path::Path;

/// The environment variable the registry reads tokens from.
pub const TOKENS_ENV: &str = "STREETSCOPE_REGISTRY_TOKENS";

/// The shortest token accepted, in bytes: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read cameras and intersections.
    Read,
    /// Read, create, update and delete.
    Write,
}

/// Why the tokens could not be read. Never holds a token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("{origin}, entry {entry}: {reason}")]
    Entry { origin: String, entry: usize, reason: String },
    #[error("reading tokens from {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("no tokens: give a tokens file or set {TOKENS_ENV}")]
    Empty,
}

/// The known tokens with their roles.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Role)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Tokens").field("count", &self.entries.len()).finish()
    }
}

impl Tokens {
    /// Parses entries (`token [read|write]`, one per line or comma-separated);
    /// `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, AuthError> {
        let mut entries = Vec::new();
        for (n, raw) in text.split(['\n', ',']).enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| AuthError::Entry { origin: origin.into(), entry: n + 1, reason: reason.into() };
            let mut words = line.split_whitespace();
            let token = words.next().unwrap_or_default();
            let role = match words.next() {
                None | Some("write") => Role::Write,
                Some("read") => Role::Read,
                Some(_) => return Err(bad("the role after the token must be `read` or `write`")),
            };
            if words.next().is_some() {
                return Err(bad("an entry is a token and optionally a role (`read` or `write`)"));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(&format!("tokens must be at least {MIN_TOKEN_LEN} characters")));
            }
            entries.push((token.as_bytes().to_vec(), role));
        }
        Ok(Self { entries })
    }

    /// Reads a tokens file.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Tokens from `file` if given, plus those of [`TOKENS_ENV`]; at least one.
    pub fn load(file: Option<&Path>) -> Result<Self, AuthError> {
        let mut tokens = match file {
            Some(p) => Self::from_file(p)?,
            None => Self::default(),
        };
        if let Ok(text) = std::env::var(TOKENS_ENV) {
            tokens.entries.extend(Self::parse(&text, TOKENS_ENV)?.entries);
        }
        if tokens.is_empty() {
            return Err(AuthError::Empty);
        }
        Ok(tokens)
    }

    /// Adds a token (tests, embedding).
    pub fn with(mut self, token: &str, role: Role) -> Self {
        self.entries.push((token.as_bytes().to_vec(), role));
        self
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The role of `presented`, if it is a known token. Every known token is
    /// compared, each in constant time.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let mut found = None;
        for (token, role) in &self.entries {
            if constant_time_eq(presented.as_bytes(), token) {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

/// Compares `presented` with `known` in time that depends only on the length
/// of `known`: neither the position of the first difference nor the length of
/// `presented` shows.
fn constant_time_eq(presented: &[u8], known: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != known.len());
    for (i, k) in known.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(!k);
        diff |= std::hint::black_box(p ^ k);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_roles_and_refuses_bad_entries() {
        let t =
            Tokens::parse("# ops\nwwwwwwwwwwwwwwww1\nrrrrrrrrrrrrrrrr2 read\n\nxxxxxxxxxxxxxxxx3 write", "f").unwrap();
        assert_eq!(t.role_of("wwwwwwwwwwwwwwww1"), Some(Role::Write));
        assert_eq!(t.role_of("rrrrrrrrrrrrrrrr2"), Some(Role::Read));
        assert_eq!(t.role_of("xxxxxxxxxxxxxxxx3"), Some(Role::Write));
        assert_eq!(t.role_of("rrrrrrrrrrrrrrrr"), None);
        assert_eq!(t.role_of("rrrrrrrrrrrrrrrr22"), None);
        assert_eq!(t.role_of(""), None);
        let env = Tokens::parse("aaaaaaaaaaaaaaaa read, bbbbbbbbbbbbbbbb", "env").unwrap();
        assert_eq!(env.role_of("bbbbbbbbbbbbbbbb"), Some(Role::Write));
        let err = Tokens::parse("short", "f").unwrap_err().to_string();
        assert!(err.contains("at least 16") && !err.contains("short"), "{err}");
        let err = Tokens::parse("aaaaaaaaaaaaaaaa admin", "f").unwrap_err().to_string();
        assert!(err.contains("`read` or `write`") && !err.contains("aaaa"), "{err}");
        assert!(!format!("{t:?}").contains("wwww"));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
