//! Time zones for spoken, shown and mailed times (`ext.timezone`, a
//! mailbox's `timezone`): `UTC`, a fixed offset (`+03:00`) or an IANA zone
//! name (`Europe/Moscow`) from the time zone database, so each time is
//! shown with the offset in force at that instant (daylight saving time).
//!
//! Zones come from the system's database (`/usr/share/zoneinfo`, or
//! `TZDIR`); a name it lacks (or a system without one) is looked up in the
//! copy built into vmail.

use std::sync::OnceLock;

use jiff::tz::{Offset, TimeZoneDatabase};
use time::{OffsetDateTime, UtcOffset};

/// A time zone vmail can apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZone(jiff::tz::TimeZone);

impl TimeZone {
    /// Coordinated Universal Time.
    pub const UTC: TimeZone = TimeZone(jiff::tz::TimeZone::UTC);

    /// `UTC`/`Z`, a fixed offset `+HH:MM` / `-HH:MM` (up to ±14:59), or a
    /// zone name the time zone database knows (IANA names such as
    /// `Europe/Moscow`, matched regardless of case). `None` otherwise.
    pub fn parse(s: &str) -> Option<TimeZone> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Some(TimeZone::UTC);
        }
        if s.starts_with(['+', '-']) {
            return fixed_offset(s).map(TimeZone::fixed);
        }
        // Names only: no paths into the database's directory.
        let name_like = (1..=64).contains(&s.len())
            && s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'-'))
            && !s.split('/').any(|part| part.is_empty() || part == "..");
        if !name_like {
            return None;
        }
        jiff::tz::db()
            .get(s)
            .or_else(|_| bundled().get(s))
            .ok()
            .map(TimeZone)
    }

    /// A zone at a fixed offset from UTC.
    pub fn fixed(offset: UtcOffset) -> TimeZone {
        match Offset::from_seconds(offset.whole_seconds()) {
            Ok(o) => TimeZone(jiff::tz::TimeZone::fixed(o)),
            Err(_) => TimeZone::UTC,
        }
    }

    /// The offset from UTC in force at `at`.
    pub fn offset_at(&self, at: OffsetDateTime) -> UtcOffset {
        let Ok(ts) = jiff::Timestamp::from_second(at.unix_timestamp()) else {
            return UtcOffset::UTC;
        };
        UtcOffset::from_whole_seconds(self.0.to_offset(ts).seconds()).unwrap_or(UtcOffset::UTC)
    }

    /// `at` as the local time of this zone.
    pub fn local(&self, at: OffsetDateTime) -> OffsetDateTime {
        at.to_offset(self.offset_at(at))
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

/// The copy of the time zone database built into vmail.
fn bundled() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// `+HH:MM` / `-HH:MM`, hours 0 to 14.
fn fixed_offset(s: &str) -> Option<UtcOffset> {
    let b = s.as_bytes();
    if b.len() != 6 || b.get(3) != Some(&b':') {
        return None;
    }
    let sign: i8 = match b.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let h: i8 = s.get(1..3)?.parse().ok()?;
    let m: i8 = s.get(4..6)?.parse().ok()?;
    if !(0..=14).contains(&h) || !(0..=59).contains(&m) {
        return None;
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn utc_and_fixed_offsets() {
        let at = datetime!(2026-07-01 12:00 UTC);
        assert_eq!(TimeZone::parse("UTC"), Some(TimeZone::UTC));
        assert_eq!(TimeZone::parse("z"), None);
        assert_eq!(TimeZone::parse("Z"), Some(TimeZone::UTC));
        let msk = TimeZone::parse("+03:00").expect("fixed");
        assert_eq!(msk.offset_at(at).whole_hours(), 3);
        let west = TimeZone::parse("-09:30").expect("fixed");
        assert_eq!(west.offset_at(at).whole_minutes(), -570);
        for bad in ["+25:00", "+3:00", "+03:60", "03:00", "+03-00", ""] {
            assert_eq!(TimeZone::parse(bad), None, "{bad}");
        }
    }

    /// A zone with daylight saving time: the offset of each instant, not
    /// the one of today.
    #[test]
    fn iana_zones_follow_daylight_saving_time() {
        let berlin = TimeZone::parse("Europe/Berlin").expect("Europe/Berlin");
        let summer = datetime!(2026-07-15 10:00 UTC);
        let winter = datetime!(2026-01-15 10:00 UTC);
        assert_eq!(berlin.offset_at(summer).whole_hours(), 2);
        assert_eq!(berlin.offset_at(winter).whole_hours(), 1);
        assert_eq!(berlin.local(summer).hour(), 12);
        assert_eq!(berlin.local(winter).hour(), 11);
        // The change itself: 2026-03-29 01:00 UTC.
        assert_eq!(
            berlin
                .offset_at(datetime!(2026-03-29 00:59:59 UTC))
                .whole_hours(),
            1
        );
        assert_eq!(
            berlin
                .offset_at(datetime!(2026-03-29 01:00 UTC))
                .whole_hours(),
            2
        );
        let ny = TimeZone::parse("America/New_York").expect("America/New_York");
        assert_eq!(ny.offset_at(summer).whole_hours(), -4);
        assert_eq!(ny.offset_at(winter).whole_hours(), -5);
        // No daylight saving time in Moscow since 2014.
        let msk = TimeZone::parse("Europe/Moscow").expect("Europe/Moscow");
        assert_eq!(msk.offset_at(summer).whole_hours(), 3);
        assert_eq!(msk.offset_at(winter).whole_hours(), 3);
        assert_eq!(TimeZone::parse("europe/moscow"), Some(msk));
    }

    #[test]
    fn unknown_names_and_paths_are_refused() {
        for bad in [
            "Mars/Olympus_Mons",
            "Europe/",
            "../etc/passwd",
            "/etc/localtime",
            "Europe//Moscow",
            "Europe/../Moscow",
            "Europe/Moscow\n",
        ] {
            assert_eq!(TimeZone::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_bundled_database_knows_the_zones() {
        let tz = bundled().get("Asia/Tokyo").expect("bundled Asia/Tokyo");
        let at = datetime!(2026-07-15 10:00 UTC);
        assert_eq!(TimeZone(tz).offset_at(at).whole_hours(), 9);
    }
}
