//! Passwords: Harbor's policy for new passwords, argon2id hashing into PHC
//! strings, verification and generation of strong passwords.
//!
//! Hashing is deliberately slow (tens of milliseconds with argon2's default
//! parameters), so the async callers in this crate run it on tokio's blocking
//! pool rather than on a runtime worker.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::Rng;

use crate::error::{Error, Result};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters.
pub const MAX_LEN: usize = 128;

/// Check a new password against Harbor's policy: 8–128 characters with at
/// least one uppercase letter, one lowercase letter and one digit (ASCII).
/// The error text names every rule the password breaks.
pub fn check_policy(password: &str) -> Result<()> {
    let mut problems = Vec::new();
    let len = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        problems.push(format!("be {MIN_LEN} to {MAX_LEN} characters long"));
    }
    if !password.chars().any(|c| c.is_ascii_uppercase()) {
        problems.push("contain an uppercase letter".to_owned());
    }
    if !password.chars().any(|c| c.is_ascii_lowercase()) {
        problems.push("contain a lowercase letter".to_owned());
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        problems.push("contain a digit".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "the password must {}",
            problems.join(", ")
        )))
    }
}

/// Hash `password` with argon2id (default parameters, random salt) into a
/// PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$...`. Does not apply
/// the policy: robot secrets and generated passwords are hashed the same way.
pub fn hash(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// Whether `password` matches the PHC string `phc`. A malformed stored hash
/// never matches (and is logged), so a corrupt row cannot lock anyone in.
pub fn verify(password: &str, phc: &str) -> bool {
    let parsed = match PasswordHash::new(phc) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(error = %e, "stored password hash is not a valid PHC string");
            return false;
        }
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// [`hash`] on tokio's blocking pool.
pub async fn hash_blocking(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))?
}

/// [`verify`] on tokio's blocking pool.
pub async fn verify_blocking(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

/// A random 24-character alphanumeric password that satisfies
/// [`check_policy`] (about 142 bits of entropy).
pub fn generate() -> String {
    let mut rng = rand::rng();
    loop {
        let candidate: String = (0..24)
            .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
            .collect();
        if check_policy(&candidate).is_ok() {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_accepts_harbor_style_passwords() {
        assert!(check_policy("Harbor12345").is_ok());
        assert!(check_policy("aB3aaaaa").is_ok());
        assert!(check_policy(&format!("aB3{}", "x".repeat(125))).is_ok());
    }

    #[test]
    fn policy_names_every_broken_rule() {
        let Err(Error::Invalid(msg)) = check_policy("short") else {
            panic!("expected Invalid");
        };
        assert!(msg.contains("8 to 128"), "{msg}");
        assert!(msg.contains("uppercase"), "{msg}");
        assert!(msg.contains("digit"), "{msg}");
        assert!(!msg.contains("lowercase"), "{msg}");
        assert!(check_policy("alllowercase1").is_err());
        assert!(check_policy("ALLUPPERCASE1").is_err());
        assert!(check_policy("NoDigitsHere").is_err());
        assert!(check_policy(&format!("aB3{}", "x".repeat(126))).is_err());
    }

    #[test]
    fn hash_and_verify_round_trip() {
        let phc = hash("Harbor12345").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("Harbor12345", &phc));
        assert!(!verify("harbor12345", &phc));
        assert!(!verify("Harbor12345", "not a phc string"));
        assert_ne!(phc, hash("Harbor12345").unwrap(), "salts must differ");
    }

    #[test]
    fn generated_passwords_pass_the_policy_and_differ() {
        let a = generate();
        assert_eq!(a.len(), 24);
        assert!(check_policy(&a).is_ok());
        assert_ne!(a, generate());
    }
}
