-- The audit views. Documented in docs/audit.md; every query there is run by the tests.

-- One row per event, with what the job was (from its "scheduled" event, so it
-- still answers after the job's row is deleted) and its current status (NULL
-- once deleted). result is a "completed" event's return value as JSON (NULL
-- when the callable returned None or something JSON cannot carry); the columns
-- added after hash were added by migration 0004 (a view's new columns come last).
CREATE OR REPLACE VIEW django_future_job_history AS
SELECT
    e.id AS event_id,
    e.job_id,
    e.seq,
    e.kind,
    e.at,
    e.runner,
    s.data->>'callable_name' AS callable_name,
    s.data->>'content_type' AS content_type,
    s.data->>'object_id' AS object_id,
    s.data->'args' AS args,
    s.data->'kwargs' AS kwargs,
    (s.data->>'time_slot_start')::timestamptz AS due_at,
    j.status AS current_status,
    e.data->>'exception' AS exception,
    e.data->>'error' AS error,
    e.data->>'return_value' AS return_value,
    e.data,
    e.hash,
    e.data->'result' AS result,
    COALESCE(s.data->>'queue', 'default') AS queue,
    COALESCE((s.data->>'priority')::integer, 0) AS priority
FROM django_future_jobevent e
JOIN django_future_jobevent s ON s.job_id = e.job_id AND s.seq = 1
LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id;


-- Every live job as it stands, with its last event.
CREATE OR REPLACE VIEW django_future_job_state AS
SELECT
    j.id AS job_id,
    j.callable_name,
    j.status,
    j.time_slot_start AS due_at,
    j.time_slot_end AS expires_at,
    j.attempts,
    j.max_attempts,
    j.runner,
    j.execution_start,
    j.execution_end,
    j.execution_end - j.execution_start AS run_time,
    j.error,
    j.return_value,
    e.kind AS last_event,
    e.at AS last_event_at,
    j.queue,
    j.priority
FROM django_future_scheduledjob j
JOIN django_future_jobevent e ON e.job_id = j.id AND e.seq = j.last_seq;


-- One row per attempt (each "started" event): when it was due (the job's slot,
-- or the retry's due time), when it started and ended, how, and where. The run
-- time is the one the runner measured when the outcome carries it ("seconds"):
-- a batch starts together and its completions are written together, so for
-- batched jobs the events' times include the wait behind earlier jobs of the
-- batch. Outcomes without it ("abandoned" ones) fall back to the time between
-- the events.
CREATE OR REPLACE VIEW django_future_attempts AS
SELECT
    job_id, started_seq,
    row_number() OVER (PARTITION BY job_id ORDER BY started_seq) AS attempt,
    callable_name, runner, due_at, started_at, finished_at, outcome, exception, wait_time,
    run_time
FROM (
    SELECT
        st.job_id,
        st.seq AS started_seq,
        sch.data->>'callable_name' AS callable_name,
        st.runner,
        due.at_due AS due_at,
        st.at AS started_at,
        fin.at AS finished_at,
        coalesce(fin.kind, 'running') AS outcome,
        fin.data->>'exception' AS exception,
        st.at - due.at_due AS wait_time,
        COALESCE(make_interval(secs => (fin.data->>'seconds')::double precision),
                 fin.at - st.at) AS run_time
    FROM django_future_jobevent st
    JOIN django_future_jobevent sch ON sch.job_id = st.job_id AND sch.seq = 1
    CROSS JOIN LATERAL (
        SELECT (CASE p.kind WHEN 'retry' THEN p.data->>'due' ELSE sch.data->>'time_slot_start' END)::timestamptz AS at_due
        FROM django_future_jobevent p
        WHERE p.job_id = st.job_id AND p.seq < st.seq AND p.kind IN ('scheduled', 'retry')
        ORDER BY p.seq DESC
        LIMIT 1
    ) due
    LEFT JOIN LATERAL (
        SELECT f.kind, f.at, f.data
        FROM django_future_jobevent f
        WHERE f.job_id = st.job_id AND f.seq > st.seq
          AND f.kind IN ('completed', 'failed', 'abandoned', 'released')
        ORDER BY f.seq
        LIMIT 1
    ) fin ON true
    WHERE st.kind = 'started'
) starts
-- A start handed back before its job was called ("released") is no attempt.
WHERE outcome <> 'released';


-- Every failed or abandoned attempt, with its error and whether a retry followed.
CREATE OR REPLACE VIEW django_future_failures AS
SELECT
    f.job_id,
    f.seq,
    f.kind,
    f.at,
    f.runner,
    s.data->>'callable_name' AS callable_name,
    f.data->>'exception' AS exception,
    f.data->>'error' AS error,
    r.data->>'due' IS NOT NULL AS will_retry,
    (r.data->>'due')::timestamptz AS retry_at
FROM django_future_jobevent f
JOIN django_future_jobevent s ON s.job_id = f.job_id AND s.seq = 1
LEFT JOIN django_future_jobevent r ON r.job_id = f.job_id AND r.seq = f.seq + 1 AND r.kind = 'retry'
WHERE f.kind IN ('failed', 'abandoned');


-- What each runner (host:pid) did, and whether it is alive now.
CREATE OR REPLACE VIEW django_future_runner_activity AS
SELECT
    a.*,
    -- What is known of the runner process (its newest row), not whether it lives:
    -- a runner killed with kill -9 keeps its lease until the lease runs out.
    p.heartbeat_at AS last_heartbeat_at,
    p.lease_expires_at,
    p.stopped_at
FROM (
    SELECT
        runner,
        count(*) FILTER (WHERE kind = 'started') AS started,
        count(*) FILTER (WHERE kind = 'completed') AS completed,
        count(*) FILTER (WHERE kind = 'failed') AS failed,
        count(*) FILTER (WHERE kind = 'abandoned') AS recovered_from_others,
        count(*) FILTER (WHERE kind = 'expired') AS expired,
        count(*) FILTER (WHERE kind = 'released') AS released,
        min(at) AS first_event,
        max(at) AS last_event
    FROM django_future_jobevent
    WHERE runner IS NOT NULL
    GROUP BY runner
) a
LEFT JOIN LATERAL (
    SELECT r.heartbeat_at, r.lease_expires_at, r.stopped_at
    FROM django_future_runnerprocess r
    WHERE r.identity = a.runner
    ORDER BY r.id DESC
    LIMIT 1
) p ON true;


-- Waiting (due to started) and run (started to finished) times per callable.
CREATE OR REPLACE VIEW django_future_callable_timings AS
SELECT
    callable_name,
    count(*) AS attempts,
    count(*) FILTER (WHERE outcome = 'completed') AS completed,
    count(*) FILTER (WHERE outcome IN ('failed', 'abandoned')) AS failed,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM wait_time)) AS wait_p50_s,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM wait_time)) AS wait_p95_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM run_time)) AS run_p50_s,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM run_time)) AS run_p95_s
FROM django_future_attempts
GROUP BY callable_name;
