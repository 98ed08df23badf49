//! Value parsers for the command line: text in, a value or a sentence saying what is wrong.

use std::time::Duration;

use crate::core::text::quoted;

/// The shortest `--interval` (and `--duration`): a shorter one would read the tables in a busy
/// loop.
pub const SHORTEST_INTERVAL: Duration = Duration::from_millis(10);

/// `--interval`: seconds as a number (`0.5`) or a duration (`500ms`, `2s`), at least 10 ms.
pub fn interval(text: &str) -> Result<Duration, String> {
    let parsed = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Duration::try_from_secs_f64(seconds).ok()
        }
        Ok(_) => None,
        Err(_) => humantime::parse_duration(text)
            .ok()
            .filter(|d| !d.is_zero()),
    };
    match parsed {
        Some(duration) if duration < SHORTEST_INTERVAL => Err(format!(
            "{} is shorter than the shortest interval, 10ms",
            quoted(text)
        )),
        Some(duration) => Ok(duration),
        None => Err(format!(
            "{} is not a positive duration (seconds, or e.g. 500ms, 2s, 1m)",
            quoted(text)
        )),
    }
}

/// A screen size, `COLUMNSxROWS` (`160x50`), at least 20 columns and 5 rows.
pub fn screen_size(text: &str) -> Result<(u16, u16), String> {
    let size = text.split_once(['x', 'X']).and_then(|(columns, rows)| {
        Some((columns.parse::<u16>().ok()?, rows.parse::<u16>().ok()?))
    });
    match size {
        Some((columns, rows)) if columns >= 20 && rows >= 5 => Ok((columns, rows)),
        _ => Err(format!(
            "{} is not a screen size (COLUMNSxROWS, e.g. 160x50; at least 20x5)",
            quoted(text)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_as_seconds_or_durations() {
        assert_eq!(interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(interval("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(interval("500ms"), Ok(Duration::from_millis(500)));
        assert!(interval("0").is_err());
        assert_eq!(interval("10ms"), Ok(Duration::from_millis(10)));
        for tiny in ["1ns", "1e-300", "0.009", "9ms"] {
            let error = interval(tiny).expect_err(tiny);
            assert!(error.contains("shortest interval, 10ms"), "{tiny}: {error}");
        }
        assert!(interval("-1").is_err());
        assert!(interval("soon").is_err());
    }
}
