//! The one duration parser: Go's `time.ParseDuration` syntax, used for flags,
//! NodePool budget durations and the `karpenter.sh/do-not-disrupt` annotation
//! ("1.5h", "500ms", "1m30.5s", "1h30m", "10m0s"). Karpenter parses that
//! annotation with Go, so node-drain must understand everything Go does; a value
//! it cannot read is an error the caller turns into a refusal (fail closed).

use std::time::Duration;

/// Parses a Go duration: an optional sign and a sequence of decimal numbers,
/// each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`). "0" alone is zero.
/// Negative durations are refused (none of node-drain's inputs can use one).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 90s, 1h30m or 1.5h");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, after) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total_nanos += value * scale;
        rest = after;
    }
    // Go's limit: about 290 years.
    if !total_nanos.is_finite() || total_nanos > i64::MAX as f64 {
        return Err(format!("{text:?} is longer than Go's largest duration"));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax_table() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("90s", Duration::from_secs(90)),
            ("8h", Duration::from_secs(8 * 3600)),
            ("1h30m", Duration::from_secs(5400)),
            ("10m0s", Duration::from_secs(600)),
            ("1.5h", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1m30.5s", Duration::from_millis(90_500)),
            ("2h45m30s", Duration::from_secs(2 * 3600 + 45 * 60 + 30)),
            ("300us", Duration::from_micros(300)),
            ("300µs", Duration::from_micros(300)),
            ("7ns", Duration::from_nanos(7)),
            ("+5m", Duration::from_secs(300)),
            (".5s", Duration::from_millis(500)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_go_duration(text).as_ref(), Ok(want), "{text}");
        }
        for text in [
            "",
            "90",
            "1d",
            "true",
            "h",
            "1.2.3s",
            "-5m",
            "5 m",
            "1h30",
            ".s",
            "1e3s",
            "9999999999h",
        ] {
            assert!(parse_go_duration(text).is_err(), "{text:?} must be refused");
        }
    }
}
