//! Recurring jobs (table `job_schedules`) and Harbor's schedule types.
//!
//! Crons have Harbor's six fields — second minute hour day-of-month month
//! day-of-week, day-of-week 0 = Sunday — and are evaluated in UTC by the
//! `croner` crate. The scheduler loop (`Jobs::run_scheduler`) fires them.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use sqlx::{PgConnection, PgExecutor};

use crate::JobsError;

/// Harbor's schedule types (`ScheduleObj.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleType {
    /// No schedule.
    None,
    /// At the top of every hour: `0 0 * * * *`.
    Hourly,
    /// At midnight UTC: `0 0 0 * * *`.
    Daily,
    /// At midnight UTC between Saturday and Sunday: `0 0 0 * * 0`.
    Weekly,
    /// The cron given.
    Custom,
    /// Not a schedule: run once, now.
    Manual,
}

impl ScheduleType {
    /// The cron of [`ScheduleType::Hourly`].
    pub const HOURLY: &'static str = "0 0 * * * *";
    /// The cron of [`ScheduleType::Daily`].
    pub const DAILY: &'static str = "0 0 0 * * *";
    /// The cron of [`ScheduleType::Weekly`].
    pub const WEEKLY: &'static str = "0 0 0 * * 0";

    /// Harbor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleType::None => "None",
            ScheduleType::Hourly => "Hourly",
            ScheduleType::Daily => "Daily",
            ScheduleType::Weekly => "Weekly",
            ScheduleType::Custom => "Custom",
            ScheduleType::Manual => "Manual",
        }
    }

    /// Parse Harbor's spelling (case-insensitively; empty means `None`).
    pub fn parse(s: &str) -> Result<ScheduleType, JobsError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "" | "none" => ScheduleType::None,
            "hourly" => ScheduleType::Hourly,
            "daily" => ScheduleType::Daily,
            "weekly" => ScheduleType::Weekly,
            // Harbor's ScheduleObj also lists `Schedule`: "by the cron given".
            "custom" | "schedule" => ScheduleType::Custom,
            "manual" => ScheduleType::Manual,
            _ => {
                return Err(JobsError::InvalidSchedule(format!(
                    "unknown schedule type {s:?} (expected None, Hourly, Daily, Weekly, Custom or Manual)"
                )));
            }
        })
    }
}

/// The cron a Harbor schedule runs on: the fixed one of `Hourly`, `Daily`
/// and `Weekly`, the given (validated) one of `Custom`, none for `None` and
/// `Manual`.
pub fn cron_for(kind: ScheduleType, cron: Option<&str>) -> Result<Option<String>, JobsError> {
    match kind {
        ScheduleType::None | ScheduleType::Manual => Ok(None),
        ScheduleType::Hourly => Ok(Some(ScheduleType::HOURLY.into())),
        ScheduleType::Daily => Ok(Some(ScheduleType::DAILY.into())),
        ScheduleType::Weekly => Ok(Some(ScheduleType::WEEKLY.into())),
        ScheduleType::Custom => {
            let cron = cron.map(str::trim).unwrap_or("");
            if cron.is_empty() {
                return Err(JobsError::InvalidSchedule(
                    "a Custom schedule needs a cron".into(),
                ));
            }
            validate_cron(cron)?;
            Ok(Some(normalise(cron)))
        }
    }
}

/// The Harbor type a stored cron reads back as: `Hourly`, `Daily` or
/// `Weekly` for their fixed crons, `Custom` otherwise.
pub fn schedule_type_of(cron: &str) -> ScheduleType {
    match normalise(cron).as_str() {
        ScheduleType::HOURLY => ScheduleType::Hourly,
        ScheduleType::DAILY => ScheduleType::Daily,
        ScheduleType::WEEKLY => ScheduleType::Weekly,
        _ => ScheduleType::Custom,
    }
}

fn normalise(cron: &str) -> String {
    cron.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse(cron: &str) -> Result<croner::Cron, JobsError> {
    let invalid = |reason: String| JobsError::InvalidCron {
        cron: cron.to_owned(),
        reason,
    };
    let fields = cron.split_whitespace().count();
    if fields != 6 {
        return Err(invalid(format!(
            "expected 6 fields (second minute hour day-of-month month day-of-week), got {fields}"
        )));
    }
    let parsed = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(&normalise(cron))
        .map_err(|e| invalid(e.to_string()))?;
    // A pattern can parse and never match (30 February); catch it here
    // rather than in the scheduler.
    parsed
        .find_next_occurrence(&Utc::now(), false)
        .map_err(|e| invalid(format!("it never fires: {e}")))?;
    Ok(parsed)
}

/// Check a six-field cron, with an error that says what is wrong.
pub fn validate_cron(cron: &str) -> Result<(), JobsError> {
    parse(cron).map(|_| ())
}

/// The first tick of `cron` strictly after `after` (UTC).
pub fn next_tick(cron: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, JobsError> {
    parse(cron)?
        .find_next_occurrence(&after, false)
        .map_err(|e| JobsError::InvalidCron {
            cron: cron.to_owned(),
            reason: e.to_string(),
        })
}

/// A recurring job.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// A number for it (Harbor's schedule `id`); stable while it exists.
    pub id: i64,
    /// Its unique name (e.g. `gc`, `purge_audit`, `retention:17`).
    pub name: String,
    /// The job kind each tick enqueues.
    pub kind: String,
    /// Six-field cron.
    pub cron: String,
    /// The payload each tick's job gets (plus `execution_id`).
    pub payload: serde_json::Value,
    /// When it fires next.
    pub next_run_at: DateTime<Utc>,
    /// When it was first set.
    pub created_at: DateTime<Utc>,
    /// When it was last set or fired.
    pub updated_at: DateTime<Utc>,
}

impl Schedule {
    /// The Harbor type of its cron.
    pub fn schedule_type(&self) -> ScheduleType {
        schedule_type_of(&self.cron)
    }
}

type ScheduleRow = (
    i64,
    String,
    String,
    String,
    serde_json::Value,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn from_row(r: ScheduleRow) -> Schedule {
    Schedule {
        id: r.0,
        name: r.1,
        kind: r.2,
        cron: r.3,
        payload: r.4,
        next_run_at: r.5,
        created_at: r.6,
        updated_at: r.7,
    }
}

/// Create or replace the schedule `name`. The cron is validated first
/// ([`JobsError::InvalidCron`] says why it is refused). Keeping the same
/// cron keeps the pending tick; a new cron starts from its next tick after
/// now (database time, as the scheduler uses). The payload may carry
/// `"project_id"` (an integer): each tick's execution is then recorded
/// against that project.
pub async fn set_schedule(
    conn: &mut PgConnection,
    name: &str,
    kind: &str,
    cron: &str,
    payload: serde_json::Value,
) -> Result<Schedule, JobsError> {
    let cron = normalise(cron);
    validate_cron(&cron)?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let next = next_tick(&cron, now)?;
    let row: ScheduleRow = sqlx::query_as(
        "INSERT INTO job_schedules (name, kind, cron, payload, next_run_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET \
           kind = EXCLUDED.kind, payload = EXCLUDED.payload, \
           next_run_at = CASE WHEN job_schedules.cron = EXCLUDED.cron \
                         THEN job_schedules.next_run_at ELSE EXCLUDED.next_run_at END, \
           cron = EXCLUDED.cron, updated_at = now() \
         RETURNING id, name, kind, cron, payload, next_run_at, created_at, updated_at",
    )
    .bind(name)
    .bind(kind)
    .bind(&cron)
    .bind(payload)
    .bind(next)
    .fetch_one(&mut *conn)
    .await?;
    Ok(from_row(row))
}

/// Remove the schedule `name`; `false` if there was none.
pub async fn delete_schedule(executor: impl PgExecutor<'_>, name: &str) -> Result<bool, JobsError> {
    let done = sqlx::query("DELETE FROM job_schedules WHERE name = $1")
        .bind(name)
        .execute(executor)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The schedule `name`, if set.
pub async fn get_schedule(
    executor: impl PgExecutor<'_>,
    name: &str,
) -> Result<Option<Schedule>, JobsError> {
    let row: Option<ScheduleRow> = sqlx::query_as(
        "SELECT id, name, kind, cron, payload, next_run_at, created_at, updated_at \
         FROM job_schedules WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(executor)
    .await?;
    Ok(row.map(from_row))
}
