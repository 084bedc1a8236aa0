//! `[pipeline] catch_up_schedule`: when the service looks for prices no completed run has
//! covered yet, besides on start and on every Redis reconnect (issue 15 item 2). A cron
//! expression read in a named timezone, so `30 22 * * 1-5` in `America/New_York` stays 22:30
//! in New York across daylight-saving changes.

use super::ConfigError;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// The timezone a schedule without `timezone` is read in: the exchanges' own.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::America::New_York;

/// A checked catch-up schedule.
#[derive(Debug, Clone)]
pub struct CatchUpSchedule {
    cron: Cron,
    timezone: Tz,
    /// The expression as written, for logs and `/metrics` help.
    expression: String,
}

impl CatchUpSchedule {
    /// Checks `expression` (five fields, minute first, or six with seconds first) and
    /// `timezone` (an IANA name such as `America/New_York`; `None` is New York).
    ///
    /// # Errors
    /// A `ConfigError` naming `{label} [pipeline]`, the key, and what it accepts.
    pub fn parse(
        label: &str,
        expression: &str,
        timezone: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let refuse = |message: String| ConfigError {
            source_name: format!("{label} [pipeline]"),
            message,
        };
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| {
                refuse(format!(
                    "catch_up_schedule must be a cron expression of five fields (minute hour \
                     day-of-month month day-of-week, e.g. \"30 22 * * 1-5\") or six with seconds \
                     first; got \"{expression}\": {e}"
                ))
            })?;
        let timezone = match timezone {
            None => DEFAULT_TIMEZONE,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                refuse(format!(
                    "timezone must be an IANA timezone name such as \"America/New_York\" or \
                     \"UTC\"; got \"{name}\""
                ))
            })?,
        };
        let schedule = Self {
            cron,
            timezone,
            expression: expression.to_owned(),
        };
        // An expression that can match (`0 0 31 2 *` cannot) is the only kind worth keeping.
        // Without a year field a pattern repeats, so one that fires at all fires after any
        // fixed instant: no clock is read here.
        if schedule.next_after(DateTime::UNIX_EPOCH).is_none() {
            return Err(refuse(format!(
                "catch_up_schedule \"{expression}\" never fires"
            )));
        }
        Ok(schedule)
    }

    /// The first time strictly after `now` the schedule fires; `None` if it never does again.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The expression and its timezone, as an operator wrote them.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.expression, self.timezone.name())
    }
}

#[cfg(test)]
mod tests {
    use super::CatchUpSchedule;
    use chrono::{DateTime, Utc};

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_new_york_evening_on_trading_days_follows_daylight_saving() {
        let schedule =
            CatchUpSchedule::parse("cache-sync.toml", "30 22 * * 1-5", Some("America/New_York"))
                .unwrap();
        // Friday 2026-03-06 after 22:30 EST: next is Monday 22:30 EDT (clocks went forward on
        // Sunday the 8th), 02:30 UTC on Tuesday.
        assert_eq!(
            schedule.next_after(utc("2026-03-07T04:00:00Z")),
            Some(utc("2026-03-10T02:30:00Z"))
        );
        // Before the change the same 22:30 is 03:30 UTC.
        assert_eq!(
            schedule.next_after(utc("2026-03-05T12:00:00Z")),
            Some(utc("2026-03-06T03:30:00Z"))
        );
        // Strictly after: the instant it fires is not its own next time.
        assert_eq!(
            schedule.next_after(utc("2026-03-06T03:30:00Z")),
            Some(utc("2026-03-07T03:30:00Z"))
        );
    }

    #[test]
    fn without_a_timezone_the_schedule_is_read_in_new_york_and_seconds_are_optional() {
        let schedule = CatchUpSchedule::parse("f.toml", "0 18 * * *", None).unwrap();
        assert_eq!(
            schedule.next_after(utc("2026-07-01T00:00:00Z")),
            Some(utc("2026-07-01T22:00:00Z"))
        );
        assert_eq!(schedule.describe(), "0 18 * * * (America/New_York)");
        let every_five_seconds =
            CatchUpSchedule::parse("f.toml", "*/5 * * * * *", Some("UTC")).unwrap();
        assert_eq!(
            every_five_seconds.next_after(utc("2026-07-01T00:00:01Z")),
            Some(utc("2026-07-01T00:00:05Z"))
        );
    }

    #[test]
    fn a_bad_expression_or_timezone_is_refused_naming_the_file_the_key_and_what_it_accepts() {
        for (expression, timezone, key) in [
            ("30 25 * * 1-5", None, "catch_up_schedule"),
            ("every night", None, "catch_up_schedule"),
            ("", None, "catch_up_schedule"),
            ("0 0 31 2 *", None, "catch_up_schedule"),
            ("30 22 * * 1-5", Some("Mars/Olympus_Mons"), "timezone"),
            ("30 22 * * 1-5", Some("EST5EDT-nope"), "timezone"),
        ] {
            let error = CatchUpSchedule::parse("/etc/cache-sync.toml", expression, timezone)
                .expect_err(expression);
            assert_eq!(error.source_name, "/etc/cache-sync.toml [pipeline]");
            assert!(error.message.starts_with(key), "{}", error.message);
            assert!(
                error.message.contains("e.g.")
                    || error.message.contains("such as")
                    || error.message.contains("never fires"),
                "{}",
                error.message
            );
        }
    }
}
