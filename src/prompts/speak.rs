//! Spoken numbers, digits, dates and times as lists of prompt names.
//!
//! These functions are pure: they only choose prompt names (e.g.
//! `["digits/2", "numbers/thousand", "numbers/40", "digits/1"]`);
//! [`PromptSet`](super::PromptSet) turns the names into audio. English
//! grammar is used for every language but Russian.

use time::{Date, PrimitiveDateTime, Weekday};

/// Grammatical gender of the counted word (Russian "один/одна/одно").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gender {
    /// The default (also used for bare numbers).
    Masculine,
    /// e.g. Russian "тысяча", "минута".
    Feminine,
    /// e.g. Russian "сообщение".
    Neuter,
}

/// Which form a word takes next to a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plural {
    /// English 1; Russian 1, 21, 31, ... (not 11).
    One,
    /// Russian 2-4, 22-24, ... (not 12-14). Never in English.
    Few,
    /// Everything else.
    Many,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grammar {
    English,
    Russian,
}

fn grammar(language: &str) -> Grammar {
    let base = language.split(['-', '_']).next().unwrap_or(language);
    if base.eq_ignore_ascii_case("ru") {
        Grammar::Russian
    } else {
        Grammar::English
    }
}

const DIGITS: [&str; 10] = [
    "digits/0", "digits/1", "digits/2", "digits/3", "digits/4", "digits/5", "digits/6", "digits/7",
    "digits/8", "digits/9",
];
const TEENS: [&str; 10] = [
    "numbers/10",
    "numbers/11",
    "numbers/12",
    "numbers/13",
    "numbers/14",
    "numbers/15",
    "numbers/16",
    "numbers/17",
    "numbers/18",
    "numbers/19",
];
/// Index = tens digit (0 and 1 unused).
const TENS: [&str; 10] = [
    "",
    "",
    "numbers/20",
    "numbers/30",
    "numbers/40",
    "numbers/50",
    "numbers/60",
    "numbers/70",
    "numbers/80",
    "numbers/90",
];
/// Russian hundreds are single words ("двести"); index = hundreds digit.
const HUNDREDS_RU: [&str; 10] = [
    "",
    "numbers/100",
    "numbers/200",
    "numbers/300",
    "numbers/400",
    "numbers/500",
    "numbers/600",
    "numbers/700",
    "numbers/800",
    "numbers/900",
];
const ORDINALS: [&str; 31] = [
    "ordinals/1st",
    "ordinals/2nd",
    "ordinals/3rd",
    "ordinals/4th",
    "ordinals/5th",
    "ordinals/6th",
    "ordinals/7th",
    "ordinals/8th",
    "ordinals/9th",
    "ordinals/10th",
    "ordinals/11th",
    "ordinals/12th",
    "ordinals/13th",
    "ordinals/14th",
    "ordinals/15th",
    "ordinals/16th",
    "ordinals/17th",
    "ordinals/18th",
    "ordinals/19th",
    "ordinals/20th",
    "ordinals/21st",
    "ordinals/22nd",
    "ordinals/23rd",
    "ordinals/24th",
    "ordinals/25th",
    "ordinals/26th",
    "ordinals/27th",
    "ordinals/28th",
    "ordinals/29th",
    "ordinals/30th",
    "ordinals/31st",
];
/// Scales by power of 1000 (index 1 = thousand), with their plural forms.
const SCALES: [[&str; 3]; 4] = [
    ["", "", ""],
    [
        "numbers/thousand",
        "numbers/thousand-few",
        "numbers/thousand-many",
    ],
    [
        "numbers/million",
        "numbers/million-few",
        "numbers/million-many",
    ],
    [
        "numbers/billion",
        "numbers/billion-few",
        "numbers/billion-many",
    ],
];

/// The plural form a word takes after `n` in `language`.
pub fn plural(language: &str, n: u32) -> Plural {
    match grammar(language) {
        Grammar::English => {
            if n == 1 {
                Plural::One
            } else {
                Plural::Many
            }
        }
        Grammar::Russian => {
            let (d, dd) = (n % 10, n % 100);
            if d == 1 && dd != 11 {
                Plural::One
            } else if (2..=4).contains(&d) && !(12..=14).contains(&dd) {
                Plural::Few
            } else {
                Plural::Many
            }
        }
    }
}

/// Names for reading a string key by key: digits, `*` (`star`), `#`
/// (`pound`); any other character is skipped.
pub fn digit_names(s: &str) -> Vec<&'static str> {
    s.chars()
        .filter_map(|c| match c {
            '*' => Some("star"),
            '#' => Some("pound"),
            _ => c.to_digit(10).and_then(|d| DIGITS.get(d as usize).copied()),
        })
        .collect()
}

/// Names for saying `n` as a cardinal number, e.g. English 2341 = "two
/// thousand three hundred forty one"; `gender` matters in Russian only.
pub fn number_names(language: &str, n: u32, gender: Gender) -> Vec<&'static str> {
    let g = grammar(language);
    if n == 0 {
        return vec![DIGITS[0]];
    }
    let mut out = Vec::new();
    // Groups of three digits, most significant first.
    let groups = [
        n / 1_000_000_000,
        n / 1_000_000 % 1000,
        n / 1000 % 1000,
        n % 1000,
    ];
    for (i, &group) in groups.iter().enumerate() {
        if group == 0 {
            continue;
        }
        let scale = 3 - i;
        match g {
            Grammar::English => {
                below_1000_en(group, &mut out);
                if let Some(forms) = SCALES.get(scale).filter(|_| scale > 0) {
                    out.push(forms[0]);
                }
            }
            Grammar::Russian => {
                let group_gender = match scale {
                    0 => gender,
                    1 => Gender::Feminine,
                    _ => Gender::Masculine,
                };
                // "тысяча", "миллион": a lone 1 before a scale is not said.
                if !(scale > 0 && group == 1) {
                    below_1000_ru(group, group_gender, &mut out);
                }
                if let Some(forms) = SCALES.get(scale).filter(|_| scale > 0) {
                    out.push(match plural(language, group) {
                        Plural::One => forms[0],
                        Plural::Few => forms[1],
                        Plural::Many => forms[2],
                    });
                }
            }
        }
    }
    out
}

/// Index helpers: every index below is < 10 by construction.
fn at(table: &[&'static str; 10], i: u32) -> &'static str {
    table.get(i as usize).copied().unwrap_or("")
}

fn below_1000_en(n: u32, out: &mut Vec<&'static str>) {
    let (h, r) = (n / 100, n % 100);
    if h > 0 {
        out.push(at(&DIGITS, h));
        out.push("numbers/hundred");
    }
    match r {
        0 => {}
        1..=9 => out.push(at(&DIGITS, r)),
        10..=19 => out.push(at(&TEENS, r - 10)),
        _ => {
            out.push(at(&TENS, r / 10));
            if r % 10 > 0 {
                out.push(at(&DIGITS, r % 10));
            }
        }
    }
}

fn below_1000_ru(n: u32, gender: Gender, out: &mut Vec<&'static str>) {
    let (h, r) = (n / 100, n % 100);
    if h > 0 {
        out.push(at(&HUNDREDS_RU, h));
    }
    let unit = |d: u32| match (d, gender) {
        (1, Gender::Feminine) => "digits/1-f",
        (1, Gender::Neuter) => "digits/1-n",
        (2, Gender::Feminine) => "digits/2-f",
        _ => at(&DIGITS, d),
    };
    match r {
        0 => {}
        1..=9 => out.push(unit(r)),
        10..=19 => out.push(at(&TEENS, r - 10)),
        _ => {
            out.push(at(&TENS, r / 10));
            if r % 10 > 0 {
                out.push(unit(r % 10));
            }
        }
    }
}

/// The name for the day of the month `day` (1..=31) said as an ordinal.
pub fn ordinal_name(day: u8) -> Option<&'static str> {
    ORDINALS.get(usize::from(day).checked_sub(1)?).copied()
}

/// Candidate names, best first, for a word that agrees with `n`: the
/// singular is `one`; the plural is `many` with optional `<many>-few` and
/// `<many>-many` forms (Russian). E.g. `("message", "messages")`.
pub fn counted_names(language: &str, n: u32, one: &str, many: &str) -> Vec<String> {
    match plural(language, n) {
        Plural::One => vec![one.to_string()],
        Plural::Few => vec![
            format!("{many}-few"),
            format!("{many}-many"),
            many.to_string(),
        ],
        Plural::Many => vec![format!("{many}-many"), many.to_string()],
    }
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "days/monday",
        Weekday::Tuesday => "days/tuesday",
        Weekday::Wednesday => "days/wednesday",
        Weekday::Thursday => "days/thursday",
        Weekday::Friday => "days/friday",
        Weekday::Saturday => "days/saturday",
        Weekday::Sunday => "days/sunday",
    }
}

fn month_name(m: time::Month) -> &'static str {
    use time::Month::*;
    match m {
        January => "months/january",
        February => "months/february",
        March => "months/march",
        April => "months/april",
        May => "months/may",
        June => "months/june",
        July => "months/july",
        August => "months/august",
        September => "months/september",
        October => "months/october",
        November => "months/november",
        December => "months/december",
    }
}

/// Names for saying when something happened, relative to `today` (both in
/// the listener's local time; the caller supplies them, nothing here reads a
/// clock). English: "today at ten oh five A.M.", "Monday at ...", "January
/// first at ..." (weekday within the last week). Russian: "сегодня в десять
/// часов пять минут", "первое января в ..." (24-hour clock).
pub fn date_time_names(language: &str, at: PrimitiveDateTime, today: Date) -> Vec<String> {
    let g = grammar(language);
    let mut out: Vec<String> = Vec::new();
    let days_ago = (today - at.date()).whole_days();
    match (g, days_ago) {
        (_, 0) => out.push("today".into()),
        (_, 1) => out.push("yesterday".into()),
        (Grammar::English, 2..=6) => out.push(weekday_name(at.weekday()).into()),
        _ => match g {
            Grammar::English => {
                out.push(month_name(at.month()).into());
                out.extend(ordinal_name(at.day()).map(String::from));
            }
            Grammar::Russian => {
                out.extend(ordinal_name(at.day()).map(String::from));
                out.push(month_name(at.month()).into());
            }
        },
    }
    out.push("at".into());
    let (hour, minute) = (u32::from(at.hour()), u32::from(at.minute()));
    let push_all = |out: &mut Vec<String>, names: Vec<&'static str>| {
        out.extend(names.into_iter().map(String::from))
    };
    match g {
        Grammar::English => {
            let h12 = match hour % 12 {
                0 => 12,
                h => h,
            };
            push_all(&mut out, number_names(language, h12, Gender::Masculine));
            match minute {
                0 => out.push("oclock".into()),
                1..=9 => {
                    out.push("oh".into());
                    push_all(&mut out, number_names(language, minute, Gender::Masculine));
                }
                _ => push_all(&mut out, number_names(language, minute, Gender::Masculine)),
            }
            out.push(if hour < 12 { "am" } else { "pm" }.into());
        }
        Grammar::Russian => {
            push_all(&mut out, number_names(language, hour, Gender::Masculine));
            out.extend(
                counted_names(language, hour, "hour", "hour")
                    .into_iter()
                    .take(1),
            );
            if minute > 0 {
                push_all(&mut out, number_names(language, minute, Gender::Feminine));
                out.extend(
                    counted_names(language, minute, "minute", "minute")
                        .into_iter()
                        .take(1),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    /// The words a listener hears, for readable assertions.
    fn say(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| match *n {
                "digits/0" => "zero",
                "digits/1" => "one",
                "digits/2" => "two",
                "digits/3" => "three",
                "digits/4" => "four",
                "digits/5" => "five",
                "digits/6" => "six",
                "digits/7" => "seven",
                "digits/8" => "eight",
                "digits/9" => "nine",
                "numbers/10" => "ten",
                "numbers/13" => "thirteen",
                "numbers/40" => "forty",
                "numbers/90" => "ninety",
                "numbers/hundred" => "hundred",
                "numbers/thousand" => "thousand",
                "numbers/million" => "million",
                "numbers/billion" => "billion",
                other => other,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn en(n: u32) -> String {
        say(&number_names("en", n, Gender::Masculine))
    }

    #[test]
    fn english_numbers() {
        assert_eq!(en(0), "zero");
        assert_eq!(en(7), "seven");
        assert_eq!(en(13), "thirteen");
        assert_eq!(en(40), "forty");
        assert_eq!(en(101), "one hundred one");
        assert_eq!(en(1001), "one thousand one");
        assert_eq!(en(2341), "two thousand three hundred forty one");
        assert_eq!(en(9999), "nine thousand nine hundred ninety nine");
        assert_eq!(en(10_000), "ten thousand");
        assert_eq!(en(1_000_000), "one million");
        assert_eq!(en(2_000_000_013), "two billion thirteen");
        assert_eq!(
            en(u32::MAX),
            "four billion two hundred ninety four million nine hundred sixty seven thousand \
             two hundred ninety five"
                .replace("sixty", "numbers/60")
        );
    }

    #[test]
    fn russian_numbers() {
        let ru = |n, g| number_names("ru", n, g).join(" ");
        assert_eq!(ru(0, Gender::Masculine), "digits/0");
        assert_eq!(ru(1, Gender::Masculine), "digits/1");
        assert_eq!(ru(1, Gender::Neuter), "digits/1-n");
        assert_eq!(ru(22, Gender::Feminine), "numbers/20 digits/2-f");
        assert_eq!(ru(1000, Gender::Masculine), "numbers/thousand");
        assert_eq!(
            ru(2341, Gender::Masculine),
            "digits/2-f numbers/thousand-few numbers/300 numbers/40 digits/1"
        );
        assert_eq!(
            ru(5_011_000, Gender::Masculine),
            "digits/5 numbers/million-many numbers/11 numbers/thousand-many"
        );
        assert_eq!(
            ru(21_001, Gender::Masculine),
            "numbers/20 digits/1-f numbers/thousand digits/1"
        );
    }

    #[test]
    fn plurals() {
        assert_eq!(plural("en", 1), Plural::One);
        assert_eq!(plural("en", 2), Plural::Many);
        assert_eq!(plural("en", 0), Plural::Many);
        for (n, p) in [
            (1, Plural::One),
            (21, Plural::One),
            (11, Plural::Many),
            (2, Plural::Few),
            (24, Plural::Few),
            (12, Plural::Many),
            (5, Plural::Many),
            (0, Plural::Many),
            (111, Plural::Many),
            (101, Plural::One),
        ] {
            assert_eq!(plural("ru", n), p, "{n}");
            assert_eq!(plural("ru-RU", n), p, "{n}");
        }
        assert_eq!(counted_names("en", 1, "message", "messages"), ["message"]);
        assert_eq!(
            counted_names("en", 3, "message", "messages"),
            ["messages-many", "messages"]
        );
        assert_eq!(
            counted_names("ru", 3, "message", "messages"),
            ["messages-few", "messages-many", "messages"]
        );
    }

    #[test]
    fn digits_and_keys() {
        assert_eq!(say(&digit_names("1001")), "one zero zero one");
        assert_eq!(digit_names("*9#"), ["star", "digits/9", "pound"]);
        assert_eq!(digit_names("+1 (a)"), ["digits/1"]);
        assert!(digit_names("").is_empty());
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal_name(1), Some("ordinals/1st"));
        assert_eq!(ordinal_name(22), Some("ordinals/22nd"));
        assert_eq!(ordinal_name(31), Some("ordinals/31st"));
        assert_eq!(ordinal_name(0), None);
        assert_eq!(ordinal_name(32), None);
    }

    #[test]
    fn dates_and_times() {
        let today = date!(2024 - 03 - 14); // a Thursday
        let s = |lang, at| date_time_names(lang, at, today).join(" ");
        assert_eq!(
            s("en", datetime!(2024-03-14 10:05)),
            "today at numbers/10 oh digits/5 am"
        );
        assert_eq!(
            s("en", datetime!(2024-03-13 00:00)),
            "yesterday at numbers/12 oclock am"
        );
        assert_eq!(
            s("en", datetime!(2024-03-11 13:45)),
            "days/monday at digits/1 numbers/40 digits/5 pm"
        );
        assert_eq!(
            s("en", datetime!(2024-01-01 12:30)),
            "months/january ordinals/1st at numbers/12 numbers/30 pm"
        );
        assert_eq!(
            s("ru", datetime!(2024-03-14 21:01)),
            "today at numbers/20 digits/1 hour digits/1-f minute"
        );
        assert_eq!(
            s("ru", datetime!(2024-03-11 05:00)),
            "ordinals/11th months/march at digits/5 hour-many"
        );
        assert_eq!(
            s("ru", datetime!(2024-03-13 02:22)),
            "yesterday at digits/2 hour-few numbers/20 digits/2-f minute-few"
        );
        // A time in the future (clock skew) is said as a date.
        assert_eq!(
            s("en", datetime!(2024-03-15 08:00)),
            "months/march ordinals/15th at digits/8 oclock am"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_number_has_words(n: u32) {
            for lang in ["en", "ru"] {
                let names = number_names(lang, n, Gender::Masculine);
                proptest::prop_assert!(!names.is_empty());
                proptest::prop_assert!(names.iter().all(|s| !s.is_empty()));
            }
        }
    }
}
