//! Instants as API.md writes them: RFC 3339 in UTC with milliseconds
//! (`2026-12-01T19:20:54.860Z`), as chrono writes them. Every answer carries two
//! (`_timestamp`, `_retrievedAt`), and a formatter cost more than the rest of a hit; so
//! the text is written by hand, an entry keeps its own, and a thread keeps the last
//! millisecond's.

use std::cell::Cell;

/// The text of one instant.
pub type Text = [u8; 24];

/// `ms` since the epoch as text, from the civil date (H. Hinnant's days-to-date).
pub fn text(ms: i64) -> Text {
    // Years 1970 to 9999 keep four digits.
    let ms = ms.clamp(0, 253_402_300_799_999);
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, ms_of_day / 3_600_000);
    put(14, 2, ms_of_day / 60_000 % 60);
    put(17, 2, ms_of_day / 1000 % 60);
    put(20, 3, ms_of_day % 1000);
    text
}

pub fn push(out: &mut String, text: &Text) {
    out.push_str(std::str::from_utf8(text).unwrap_or_default());
}

/// `push(out, &text(ms))`, formatted once per millisecond on each thread: a thread
/// answering hits writes the same `_retrievedAt` for dozens of them in a row.
pub fn push_now(out: &mut String, ms: i64) {
    thread_local! {
        static LAST: Cell<(i64, Text)> = const { Cell::new((i64::MIN, [b'0'; 24])) };
    }
    let now = LAST.with(|last| match last.get() {
        (at, kept) if at == ms => kept,
        _ => {
            let fresh = text(ms);
            last.set((ms, fresh));
            fresh
        }
    });
    push(out, &now);
}

/// `ms` as chrono writes it, which the text written by hand must equal.
#[cfg(test)]
pub(crate) fn chrono_text(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .expect("in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_as_chrono_writes_them() {
        // Day, month and leap-year edges, then a spread up to year 9999.
        let edges = [
            0,
            1,
            86_399_999,
            86_400_000,
            951_782_400_000,
            951_868_799_999,
            4_107_542_399_999,
        ];
        let spread = (0..20_000i64).map(|i| i * 12_676_542_017_321 % 253_402_300_799_999);
        for ms in edges.into_iter().chain(spread) {
            let mut written = String::new();
            push(&mut written, &text(ms));
            assert_eq!(written, chrono_text(ms), "{ms}");
        }
    }

    #[test]
    fn the_kept_millisecond_is_rewritten_when_the_clock_moves() {
        for ms in [5_000, 5_000, 5_001, 4_999, 5_001] {
            let mut written = String::new();
            push_now(&mut written, ms);
            assert_eq!(written, chrono_text(ms), "{ms}");
        }
    }
}
