//! Jobs of the durable queue (docs/architecture.md#background-jobs): work that must survive a
//! failure or a restart, such as provisioning a user or deleting a device in Synapse.

use std::time::Duration;

use ulid::Ulid;

use super::keyword_enum;

keyword_enum! {
    /// Where a job is in its life.
    pub enum JobStatus as "job status" {
        /// Waiting for its `scheduled_at`, then for the worker.
        Available = "available",
        /// Claimed by the worker.
        Running = "running",
        /// Done.
        Completed = "completed",
        /// This attempt failed (a retry, if any, is `next_attempt_id`).
        Failed = "failed",
        /// Found running after a restart: the process died during it.
        Lost = "lost",
    }
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The row id.
    pub id: Ulid,
    /// Which queue (`provision-user`, `delete-device`…), which picks the handler.
    pub queue_name: String,
    /// The handler's arguments.
    pub payload: serde_json::Value,
    /// Its status.
    pub status: JobStatus,
    /// 0 for the first attempt, then 1, 2…
    pub attempt: i64,
    /// When it may run.
    pub scheduled_at: i64,
    /// When it was enqueued.
    pub created_at: i64,
    /// When the worker claimed it.
    pub started_at: Option<i64>,
    /// When it finished successfully.
    pub completed_at: Option<i64>,
    /// When it failed (or was found lost).
    pub failed_at: Option<i64>,
    /// Why it failed.
    pub failed_reason: Option<String>,
    /// The next attempt, when it was retried.
    pub next_attempt_id: Option<Ulid>,
}

/// How long to wait before retrying after `attempt` failed: 5 s, doubling each time, at most
/// one hour.
pub fn retry_delay(attempt: i64) -> Duration {
    const BASE: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(3600);
    let doublings = u32::try_from(attempt.clamp(0, 16)).unwrap_or(16);
    BASE.saturating_mul(1 << doublings).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_an_hour() {
        assert_eq!(retry_delay(0), Duration::from_secs(5));
        assert_eq!(retry_delay(1), Duration::from_secs(10));
        assert_eq!(retry_delay(5), Duration::from_secs(160));
        assert_eq!(retry_delay(30), Duration::from_secs(3600));
        assert_eq!(retry_delay(-1), Duration::from_secs(5));
    }
}
