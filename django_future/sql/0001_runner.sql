-- The runner's two hot statements, as functions: PL/pgSQL plans the statements
-- inside once per session and reuses the plans, where a statement sent by
-- Django (client-side binding, no prepared statements) is planned every time.
-- queries.sql calls them as "claim" and "append".

-- Claim up to how_many due jobs (appending event_kind, "started" or "claimed",
-- naming the runner), skipping rows other runners hold, then return every job
-- this runner now holds.
CREATE OR REPLACE FUNCTION django_future_claim(
    claim_at timestamptz, runner_name text, runner_pk bigint, how_many integer, event_kind text
) RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql AS $claim$
DECLARE
    cutoff timestamptz := COALESCE(claim_at, statement_timestamp());
BEGIN
    WITH due AS (
        SELECT j.id, j.last_seq
        FROM django_future_scheduledjob j
        WHERE j.status = 'scheduled'
          AND j.time_slot_start <= cutoff
          AND (j.time_slot_end IS NULL OR j.time_slot_end >= cutoff)
        ORDER BY j.time_slot_start, j.id
        LIMIT how_many
        FOR UPDATE SKIP LOCKED
    )
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
    SELECT due.id, due.last_seq + 1, event_kind, statement_timestamp(), runner_name,
           jsonb_build_object('runner_id', runner_pk, 'backend_pid', pg_backend_pid())
    FROM due;

    RETURN QUERY
        SELECT * FROM django_future_scheduledjob j
        WHERE j.runner_process_id = runner_pk AND j.status IN ('claimed', 'running')
        ORDER BY j.time_slot_start, j.id;
END
$claim$;


-- Append the next event of one live job (seq = last_seq + 1) if its status is
-- one of allowed and its last seq is expected_seq (NULL: any). Locks the row
-- first, so a concurrent change is seen. Returns the new seq, or NULL if the
-- job is gone or not as expected.
CREATE OR REPLACE FUNCTION django_future_append(
    target bigint, event_kind text, runner_name text, payload jsonb, allowed text[],
    expected_seq integer
) RETURNS integer
LANGUAGE plpgsql AS $append$
DECLARE
    new_seq integer;
BEGIN
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
    SELECT j.id, j.last_seq + 1, event_kind, statement_timestamp(), runner_name, payload
    FROM django_future_scheduledjob j
    WHERE j.id = target
      AND (allowed IS NULL OR j.status = ANY(allowed))
      AND (expected_seq IS NULL OR j.last_seq = expected_seq)
    FOR UPDATE
    RETURNING seq INTO new_seq;
    RETURN new_seq;
END
$append$;
