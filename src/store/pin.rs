//! PIN rules and hashing (argon2id, PHC string with its own salt).

use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

/// Work buffers kept for reuse at most (one per PIN check running at once;
/// the runtime bounds how many run).
const KEPT_BUFFERS: usize = 64;

/// Largest memory cost a stored hash may ask for (KiB): a corrupt or
/// hostile `mailbox.json` must not make one check allocate gigabytes.
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// Hashes and verifies PINs at a [`PinCost`].
///
/// Verification reuses its argon2 work memory (19 MiB at the recommended
/// cost): freed and reallocated each time, blocks of that size end up in
/// the allocator's heaps (glibc raises its mmap threshold after the first
/// free) and are not returned to the system, so parallel checks left the
/// process at the peak size for good. Kept buffers cost `19 MiB × the most
/// checks that ever ran at once`, which the runtime's hashing pool bounds.
#[derive(Debug, Clone, Default)]
pub struct PinHasher {
    params: Params,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl PinHasher {
    /// A hasher at `cost`.
    pub fn new(cost: PinCost) -> Self {
        let params = match cost {
            PinCost::Recommended => Params::default(),
            PinCost::TestOnly => Params::new(256, 1, 1, None).unwrap_or_default(),
        };
        PinHasher {
            params,
            memory: Arc::default(),
        }
    }

    /// A deliberately cheap hasher for tests.
    #[cfg(test)]
    pub fn cheap() -> Self {
        Self::new(PinCost::TestOnly)
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a PIN into a PHC string (`$argon2id$v=19$...`), in reused
    /// work memory like [`verify`](Self::verify).
    pub fn hash(&self, pin: &str) -> Result<String, StoreError> {
        let err = |e: &dyn std::fmt::Display| StoreError::PinHash {
            reason: e.to_string(),
        };
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| err(&e))?;
        let argon = self.argon();
        let mut out = vec![
            0u8;
            self.params
                .output_len()
                .unwrap_or(Params::DEFAULT_OUTPUT_LEN)
        ];
        let mut memory = self.take_memory(self.params.block_count());
        let r =
            argon.hash_password_into_with_memory(pin.as_bytes(), salt_bytes, &mut out, &mut memory);
        self.give_back(memory);
        r.map_err(|e| err(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| err(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| err(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Checks a PIN against a PHC string. The parameters come from the
    /// string, so hashes made with other costs verify too. `Err(reason)`
    /// if the stored string does not parse.
    pub fn verify(&self, pin: &str, phc: &str) -> Result<bool, String> {
        let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err("no salt or no hash".into());
        };
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
        if params.m_cost() > MAX_M_COST_KIB {
            return Err(format!("memory cost {} KiB is too high", params.m_cost()));
        }
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf).map_err(|e| e.to_string())?;
        let blocks = params.block_count();
        let argon = Argon2::new(algorithm, version, params);
        let mut out = vec![0u8; expected.len()];
        let mut memory = self.take_memory(blocks);
        let r = argon.hash_password_into_with_memory(pin.as_bytes(), salt, &mut out, &mut memory);
        self.give_back(memory);
        if r.is_err() {
            return Ok(false);
        }
        // `Output` compares in constant time.
        Ok(Output::new(&out).is_ok_and(|computed| computed == expected))
    }

    fn take_memory(&self, blocks: usize) -> Vec<Block> {
        let kept = self.memory.lock().ok().and_then(|mut m| m.pop());
        match kept {
            Some(mut buf) => {
                if buf.len() < blocks {
                    buf.resize(blocks, Block::default());
                }
                buf
            }
            None => vec![Block::default(); blocks],
        }
    }

    fn give_back(&self, buf: Vec<Block>) {
        if let Ok(mut m) = self.memory.lock() {
            if m.len() < KEPT_BUFFERS {
                m.push(buf);
            }
        }
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

    #[test]
    fn verification_reuses_its_memory() {
        let h = PinHasher::cheap();
        let a = h.hash("1234").unwrap();
        let other = PinHasher::new(PinCost::TestOnly).hash("5678").unwrap();
        for _ in 0..3 {
            assert_eq!(h.verify("1234", &a), Ok(true));
            assert_eq!(h.verify("1234", &other), Ok(false));
            assert_eq!(h.verify("5678", &other), Ok(true));
        }
        assert_eq!(h.memory.lock().unwrap().len(), 1, "one buffer, reused");
    }

    #[test]
    fn hashes_of_the_argon2_crate_still_verify() {
        // Stored PINs were made by `hash_password`; an independent
        // verification must agree with ours.
        use argon2::password_hash::PasswordVerifier;
        let h = PinHasher::cheap();
        let a = h.hash("24680").unwrap();
        let parsed = PasswordHash::new(&a).unwrap();
        assert!(Argon2::default().verify_password(b"24680", &parsed).is_ok());
        assert_eq!(h.verify("24680", &a), Ok(true));
        assert_eq!(h.verify("24681", &a), Ok(false));
        use argon2::password_hash::PasswordHasher;
        let crate_made = Argon2::new(Algorithm::Argon2id, Version::V0x13, h.params.clone())
            .hash_password(b"1357", &SaltString::generate(&mut rand::rngs::OsRng))
            .unwrap()
            .to_string();
        assert_eq!(h.verify("1357", &crate_made), Ok(true));
        assert_eq!(h.verify("1358", &crate_made), Ok(false));
        let huge = a.replace("m=256", "m=4000000");
        assert!(h.verify("24680", &huge).is_err());
    }
}
