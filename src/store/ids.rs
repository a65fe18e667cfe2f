//! Message ids and timestamps.
//!
//! An id is `<UTC yyyymmddThhmmss.mmmZ>-<instance>-<6 hex>`: fixed-width
//! time first, so ids sort by time; the instance name and a random part
//! keep ids of different instances apart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::fsutil::rand_hex6;

/// Longest instance part kept in an id.
const MAX_INSTANCE_IN_ID: usize = 32;

fn to_datetime(t: SystemTime) -> OffsetDateTime {
    let nanos: i128 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_millis()).unwrap_or(0) * 1_000_000,
        Err(e) => -(i128::try_from(e.duration().as_millis()).unwrap_or(0) * 1_000_000),
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 UTC with millisecond precision.
pub fn rfc3339(t: SystemTime) -> String {
    to_datetime(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    from_unix_nanos(dt.unix_timestamp_nanos())
}

fn from_unix_nanos(n: i128) -> Option<SystemTime> {
    if n >= 0 {
        let n = u64::try_from(n).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_nanos(n))
    } else {
        let n = u64::try_from(-n).ok()?;
        UNIX_EPOCH.checked_sub(Duration::from_nanos(n))
    }
}

/// The instance name reduced to `[A-Za-z0-9]`, at most 32 characters.
fn instance_part(instance: &str) -> String {
    let s: String = instance
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(MAX_INSTANCE_IN_ID)
        .collect();
    if s.is_empty() {
        "vmail".to_owned()
    } else {
        s
    }
}

/// A new message id for a message received at `now` by `instance`.
pub fn new_message_id(now: SystemTime, instance: &str) -> String {
    let stamp = to_datetime(now)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ))
        .unwrap_or_else(|_| "19700101T000000.000Z".to_owned());
    format!("{stamp}-{}-{}", instance_part(instance), rand_hex6())
}

/// The time encoded at the start of an id made by [`new_message_id`].
pub fn id_time(id: &str) -> Option<SystemTime> {
    let stamp = id.get(..20)?;
    let dt = PrimitiveDateTime::parse(
        stamp,
        format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"),
    )
    .ok()?;
    from_unix_nanos(dt.assume_utc().unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::names::validate_message_id;

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let t1 = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let t2 = t1 + Duration::from_millis(1);
        let a = new_message_id(t1, "vmail1");
        let b = new_message_id(t2, "../x y");
        assert!(a.starts_with("20231114T221320.123Z-vmail1-"), "{a}");
        assert!(b.contains("-xy-"), "{b}");
        assert!(a < b);
        validate_message_id(&a).unwrap();
        validate_message_id(&b).unwrap();
        assert_eq!(id_time(&a), Some(t1));
        assert_eq!(rfc3339(t1), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339(&rfc3339(t1)), Some(t1));
        assert_eq!(id_time("garbage"), None);
    }
}
