//! Which new PINs the menu accepts.

/// Shortest PIN a subscriber may choose.
pub const MIN_PIN_DIGITS: usize = 4;
/// Longest PIN a subscriber may choose.
pub const MAX_PIN_DIGITS: usize = 16;

/// True when `pin` may be set from the phone: 4 to 16 digits, not all the
/// same digit, and not a run up or down (`1234`, `4321`, `0123`, also
/// wrapping past 9 as in `7890`).
pub fn new_pin_allowed(pin: &str) -> bool {
    let b = pin.as_bytes();
    if !(MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&b.len()) || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let steps = || b.windows(2).map(|w| (10 + w[1] - w[0]) % 10);
    let constant_step = |s: u8| steps().all(|x| x == s);
    !(constant_step(0) || constant_step(1) || constant_step(9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in [
            "1357",
            "2580",
            "0000001",
            "1122",
            "12345670",
            "9876543219",
            "1212",
        ] {
            assert!(new_pin_allowed(ok), "{ok}");
        }
        let seventeen = "13579".repeat(4)[..17].to_string();
        for bad in [
            "", "12", "123", "1111", "1234", "4321", "0123", "3210", "7890", "0987", "56789012",
            "abcd", "12a4", "999999", &seventeen,
        ] {
            assert!(!new_pin_allowed(bad), "{bad}");
        }
        assert!(new_pin_allowed(&seventeen[..16]));
    }
}
