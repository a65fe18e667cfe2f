//! A `#`-terminated digit entry (mailbox number, PIN, forward target).

/// Digits typed so far, capped: what goes past the cap makes the entry
/// invalid instead of growing the buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Entry {
    digits: String,
    overflow: bool,
}

/// A finished entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entered {
    /// Nothing was typed.
    Empty,
    /// More than the cap was typed: never a valid value.
    TooLong,
    /// The digits.
    Digits(String),
}

impl Entry {
    /// Adds a digit `0`-`9`; others are the caller's business.
    pub(super) fn push(&mut self, d: char, cap: usize) {
        if self.overflow || self.digits.len() >= cap {
            self.overflow = true;
            self.digits.clear();
        } else {
            self.digits.push(d);
        }
    }

    /// Ends the entry.
    pub(super) fn finish(&mut self) -> Entered {
        let e = std::mem::take(self);
        if e.overflow {
            Entered::TooLong
        } else if e.digits.is_empty() {
            Entered::Empty
        } else {
            Entered::Digits(e.digits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_and_reset() {
        let mut e = Entry::default();
        assert_eq!(e.finish(), Entered::Empty);
        for _ in 0..4 {
            e.push('1', 4);
        }
        assert_eq!(e.finish(), Entered::Digits("1111".into()));
        for _ in 0..200 {
            e.push('1', 4);
        }
        assert!(e.digits.capacity() <= 8);
        assert_eq!(e.finish(), Entered::TooLong);
        assert_eq!(e.finish(), Entered::Empty);
    }
}
