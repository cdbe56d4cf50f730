-- The durable job queue (calls to Synapse that must not be lost, cleanups). One in-process
-- worker claims `available` jobs whose `scheduled_at` has come. A failed attempt stays as a
-- `failed` row and, when retried, points at the next attempt's row (`next_attempt_id`).
CREATE TABLE queue_jobs (
    queue_job_id TEXT NOT NULL PRIMARY KEY,
    queue_name TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('available', 'running', 'completed', 'failed', 'lost')),
    attempt BIGINT NOT NULL,
    -- When the job may run (the creation time for "as soon as possible").
    scheduled_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT NULL,
    completed_at BIGINT NULL,
    failed_at BIGINT NULL,
    failed_reason TEXT NULL,
    next_attempt_id TEXT NULL REFERENCES queue_jobs (queue_job_id)
);

-- The worker's poll: the oldest due available job.
CREATE INDEX queue_jobs_status_scheduled_at_idx ON queue_jobs (status, scheduled_at);
