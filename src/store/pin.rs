//! PIN rules and hashing (argon2id, PHC string with its own salt).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::error::StoreError;

/// Checks the store's PIN rule: 4..=20 ASCII digits.
pub fn validate_pin(pin: &str) -> Result<(), StoreError> {
    if !(4..=20).contains(&pin.len()) {
        return Err(StoreError::InvalidValue {
            what: "pin",
            reason: "must be 4 to 20 digits",
        });
    }
    if !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidValue {
            what: "pin",
            reason: "only digits are allowed",
        });
    }
    Ok(())
}

/// How expensive PIN hashing is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinCost {
    /// argon2id with the recommended parameters (19 MiB, 2 passes): about
    /// 20 ms per hash in a release build. Use this in production.
    #[default]
    Recommended,
    /// A deliberately cheap setting (256 KiB, 1 pass) for tests in debug
    /// builds, where `Recommended` takes about a second per hash. Hashes
    /// made with either cost verify with either.
    TestOnly,
}

/// Hashes and verifies PINs at a [`PinCost`].
#[derive(Debug, Clone, Default)]
pub struct PinHasher {
    params: Params,
}

impl PinHasher {
    /// A hasher at `cost`.
    pub fn new(cost: PinCost) -> Self {
        let params = match cost {
            PinCost::Recommended => Params::default(),
            PinCost::TestOnly => Params::new(256, 1, 1, None).unwrap_or_default(),
        };
        PinHasher { params }
    }

    /// A deliberately cheap hasher for tests.
    #[cfg(test)]
    pub fn cheap() -> Self {
        Self::new(PinCost::TestOnly)
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a PIN into a PHC string (`$argon2id$v=19$...`).
    pub fn hash(&self, pin: &str) -> Result<String, StoreError> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon()
            .hash_password(pin.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::PinHash {
                reason: e.to_string(),
            })
    }

    /// Checks a PIN against a PHC string. The parameters come from the
    /// string, so hashes made with other costs verify too. `Err(reason)`
    /// if the stored string does not parse.
    pub fn verify(&self, pin: &str, phc: &str) -> Result<bool, String> {
        let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
        Ok(self
            .argon()
            .verify_password(pin.as_bytes(), &parsed)
            .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_rules() {
        assert!(validate_pin("1234").is_ok());
        assert!(validate_pin(&"9".repeat(20)).is_ok());
        for bad in ["", "123", "12a4", "1234 ", &"1".repeat(21), "١٢٣٤"] {
            assert!(validate_pin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hash_and_verify() {
        let h = PinHasher::cheap();
        let a = h.hash("1234").unwrap();
        let b = h.hash("1234").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(!a.contains("1234$") && !a.ends_with("1234"));
        assert_eq!(h.verify("1234", &a), Ok(true));
        assert_eq!(h.verify("4321", &a), Ok(false));
        assert!(h.verify("1234", "not a hash").is_err());
    }
}
