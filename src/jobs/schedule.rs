//! Recurring jobs: a cron expression with seconds (`sec min hour day month
//! weekday`, PROTOCOL §7) in a time zone, turned into one job per slot.
//!
//! Every node runs the same schedules; a slot's job carries the dedupe key
//! `KIND@SLOT` (the slot as a UTC instant), so it is enqueued once however
//! many nodes reach it, and a node that restarts within the slot does not
//! enqueue it again. A slot missed while every node was down is caught up at
//! the next start when it is at most `catch_up` old (the latest such slot
//! only: an hourly export down for a day runs once, not 24 times).
//!
//! Daylight saving follows croner (Vixie cron's rules): a slot in the hour
//! that does not exist runs at the first instant after it; a fixed-time
//! slot in the hour that happens twice runs once.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use thiserror::Error;

use super::Jobs;
use crate::archive::{Enqueued, NewJob};
use crate::shutdown::Shutdown;
use crate::telemetry::names;

#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("invalid schedule {pattern:?} (expected `sec min hour day month weekday`): {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("unknown time zone {0:?} (an IANA name such as Asia/Kolkata)")]
    TimeZone(String),
}

/// One recurring job.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub kind: &'static str,
    cron: Cron,
    pattern: String,
    pub time_zone: Tz,
    /// The payload of every slot's job; `slot` (RFC 3339, UTC) is added.
    pub payload: serde_json::Value,
    pub max_attempts: i32,
    /// How old a missed slot may be and still run at start.
    pub catch_up: Duration,
}

impl Schedule {
    /// A schedule for `kind` from `pattern` in `time_zone`; the payload is
    /// `{}`, 5 attempts, a missed slot caught up within an hour.
    pub fn parse(kind: &'static str, pattern: &str, time_zone: Tz) -> Result<Self, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .build()
            .parse(pattern)
            .map_err(|err| ScheduleError::Pattern {
                pattern: pattern.to_owned(),
                reason: err.to_string(),
            })?;
        // A pattern that never matches (31 February) is refused now.
        cron.find_next_occurrence(&Utc::now().with_timezone(&time_zone), false)
            .map_err(|err| ScheduleError::Pattern {
                pattern: pattern.to_owned(),
                reason: err.to_string(),
            })?;
        Ok(Self {
            kind,
            cron,
            pattern: pattern.to_owned(),
            time_zone,
            payload: serde_json::json!({}),
            max_attempts: 5,
            catch_up: Duration::from_secs(3600),
        })
    }

    /// `pattern` in the time zone named `zone`.
    pub fn parse_in(kind: &'static str, pattern: &str, zone: &str) -> Result<Self, ScheduleError> {
        let tz = Tz::from_str(zone).map_err(|_| ScheduleError::TimeZone(zone.to_owned()))?;
        Self::parse(kind, pattern, tz)
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.time_zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest slot at or before `at`.
    pub fn latest_at(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&self.time_zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The job for `slot`.
    pub fn job(&self, slot: DateTime<Utc>) -> NewJob {
        let slot_text = slot.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut payload = self.payload.clone();
        if let Some(map) = payload.as_object_mut() {
            map.insert("slot".into(), slot_text.clone().into());
        }
        NewJob {
            kind: self.kind.to_owned(),
            payload,
            due_at: slot,
            max_attempts: self.max_attempts,
            dedupe_key: Some(format!("{}@{slot_text}", self.kind)),
            subject: None,
        }
    }
}

/// Enqueues each schedule's slots as they come, until `shutdown`.
pub fn start(jobs: Jobs, schedules: Vec<Schedule>, shutdown: Shutdown) {
    if schedules.is_empty() {
        return;
    }
    tokio::spawn(run(jobs, schedules, shutdown));
}

async fn run(jobs: Jobs, schedules: Vec<Schedule>, shutdown: Shutdown) {
    let now = Utc::now();
    let mut next: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(schedules.len());
    for schedule in &schedules {
        if let Some(missed) = schedule.latest_at(now) {
            let age = (now - missed).to_std().unwrap_or_default();
            if age <= schedule.catch_up {
                enqueue(&jobs, schedule, missed).await;
            }
        }
        next.push(schedule.next_after(now));
    }
    let stopping = shutdown.wait();
    tokio::pin!(stopping);
    loop {
        let Some((i, due)) = next
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.map(|s| (i, s)))
            .min_by_key(|(_, slot)| *slot)
        else {
            return;
        };
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stopping => return,
        }
        if Utc::now() < due {
            // Woke early (the clock moved): wait again.
            continue;
        }
        enqueue(&jobs, &schedules[i], due).await;
        next[i] = schedules[i].next_after(due);
    }
}

async fn enqueue(jobs: &Jobs, schedule: &Schedule, slot: DateTime<Utc>) {
    // The database may be away for a moment: a few tries before the slot
    // is left to the other nodes (or lost, on one node; logged).
    for attempt in 1..=5u32 {
        match jobs.enqueue(&schedule.job(slot)).await {
            Ok(enqueued) => {
                if matches!(enqueued, Enqueued::Created(_)) {
                    metrics::counter!(names::JOB_SLOTS, "kind" => schedule.kind).increment(1);
                    tracing::debug!(kind = schedule.kind, %slot, "recurring job enqueued");
                }
                return;
            }
            Err(err) if attempt < 5 => {
                tracing::warn!(kind = schedule.kind, %slot, error = %err, "cannot enqueue a recurring job; trying again");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            Err(err) => {
                tracing::error!(kind = schedule.kind, %slot, error = %err, "a recurring job's slot was not enqueued");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    #[test]
    fn slots_follow_the_pattern_in_its_time_zone() {
        // The weekly report's default: Mondays at 08:00 in Kolkata (UTC+5:30).
        let weekly =
            Schedule::parse_in("reports.weekly", "0 0 8 * * Mon", "Asia/Kolkata").expect("valid");
        // Wednesday 2 December 2026 → Monday 7 December, 02:30 UTC.
        let next = weekly
            .next_after(at("2026-12-02T10:00:00Z"))
            .expect("a slot");
        assert_eq!(next, at("2026-12-07T02:30:00Z"));
        assert_eq!(weekly.next_after(next), Some(at("2026-12-14T02:30:00Z")));
        assert_eq!(weekly.latest_at(next), Some(next), "inclusive");
        let job = weekly.job(next);
        assert_eq!(
            job.dedupe_key.as_deref(),
            Some("reports.weekly@2026-12-07T02:30:00Z")
        );
        assert_eq!(job.payload["slot"], "2026-12-07T02:30:00Z");
        assert_eq!(job.due_at, next);
    }

    #[test]
    fn seconds_are_required_and_bad_patterns_and_zones_are_refused() {
        assert!(Schedule::parse("x", "0 9-21 * * *", chrono_tz::UTC).is_err());
        assert!(Schedule::parse("x", "0 0 9-21 * * *", chrono_tz::UTC).is_ok());
        assert!(Schedule::parse("x", "0 0 25 * * *", chrono_tz::UTC).is_err());
        assert!(Schedule::parse("x", "0 0 0 31 2 *", chrono_tz::UTC).is_err());
        assert!(matches!(
            Schedule::parse_in("x", "0 0 9 * * *", "Mars/Olympus"),
            Err(ScheduleError::TimeZone(_))
        ));
    }

    #[test]
    fn the_hourly_sheets_slots_skip_the_night() {
        let sheets =
            Schedule::parse("sheets.export", "0 0 9-21 * * *", chrono_tz::UTC).expect("valid");
        let slot = sheets
            .next_after(at("2026-12-06T21:00:00Z"))
            .expect("a slot");
        assert_eq!(slot, at("2026-12-07T09:00:00Z"));
    }

    #[test]
    fn a_slot_in_the_missing_hour_of_spring_forward_runs_once_after_it() {
        // Europe/Berlin skips 02:00–03:00 on 29 March 2026.
        let nightly = Schedule::parse_in("x", "0 30 2 * * *", "Europe/Berlin").expect("valid");
        let before = chrono_tz::Europe::Berlin
            .with_ymd_and_hms(2026, 3, 28, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        // 02:30 does not exist on the 29th: 03:00 CEST, the first instant
        // after the gap; the next night is back at 02:30 CEST.
        let first = nightly.next_after(before).expect("a slot");
        assert_eq!(first, at("2026-03-29T01:00:00Z"));
        let second = nightly.next_after(first).expect("a slot");
        assert_eq!(second, at("2026-03-30T00:30:00Z"));
    }
}
