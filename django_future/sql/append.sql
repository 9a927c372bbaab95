-- Appending one event to one job, the two ways.
--
-- django_future_append leaves the fold to the fold trigger (fold_trigger.sql);
-- the ledger's single appends (cancelling, failures, and the like) go through
-- it, by the "append" query of queries.sql.
--
-- django_future_append_folded is for the package's own hot writers (the
-- runner's claim and completion, in claim.sql and complete.sql), which append
-- their events and fold them in the same statement, with the same fold. On the
-- runner's path the fold trigger was most of the database's work per job:
-- pgtrigger's entry check, a transition table turned into an array, the job's
-- row read and locked a second time, the hash computed a second time to check
-- it, all to fold one event whose writer had just locked the row and computed
-- the hash itself (pgbench, 4 clients, one claim and one completion per job:
-- about 1,300-1,450 us of server time per job through the trigger, 850-900 us
-- with the writer folding).
--
-- While such a writer appends, it sets the transaction-local setting
-- django_future.folded to 'on', which the fold_events trigger and the job
-- table's guard read in their WHEN clauses (models.py), and sets it back to ''
-- before it returns; if it fails, the transaction or savepoint rolls back and
-- the setting with it. Setting django_future.folded by hand skips the fold and
-- the stamp check for what one then inserts: unsupported, and what
-- `manage.py ledger verify` would report.

-- Append the next event of one live job (seq = last_seq + 1), with its hash,
-- if its status is one of allowed and its last seq is expected_seq (NULL:
-- any). Locks the row first, so a concurrent change is seen. Returns the new
-- seq, or NULL if the job is gone or not as expected.
CREATE OR REPLACE FUNCTION django_future_append(
    target bigint, event_kind text, runner_name text, payload jsonb, allowed text[],
    expected_seq integer
) RETURNS integer
LANGUAGE plpgsql AS $append$
DECLARE
    new_seq integer;
BEGIN
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    SELECT j.id, j.last_seq + 1, event_kind, statement_timestamp(), runner_name, payload,
           django_future_event_hash(j.last_hash, j.id, j.last_seq + 1, event_kind,
                                    statement_timestamp(), runner_name, payload)
    FROM django_future_scheduledjob j
    WHERE j.id = target
      AND (allowed IS NULL OR j.status = ANY(allowed))
      AND (expected_seq IS NULL OR j.last_seq = expected_seq)
    FOR UPDATE
    RETURNING seq INTO new_seq;
    RETURN new_seq;
END
$append$;


-- Append one event to a job its caller has locked, and fold it: the job's new
-- row. The caller has set django_future.folded (see above).
CREATE OR REPLACE FUNCTION django_future_append_folded(
    cur django_future_scheduledjob, event_kind text, runner_name text, payload jsonb
) RETURNS django_future_scheduledjob
LANGUAGE plpgsql AS $append_folded$
DECLARE
    ev django_future_jobevent;
    nxt django_future_scheduledjob;
BEGIN
    ev.job_id := cur.id;
    ev.seq := cur.last_seq + 1;
    ev.kind := event_kind;
    ev.at := statement_timestamp();
    ev.runner := runner_name;
    ev.data := payload;
    ev.hash := django_future_event_hash(cur.last_hash, ev.job_id, ev.seq, ev.kind, ev.at,
                                        ev.runner, ev.data);
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    VALUES (ev.job_id, ev.seq, ev.kind, ev.at, ev.runner, ev.data, ev.hash);
    nxt := django_future_fold(cur, ev);
    UPDATE django_future_scheduledjob SET
        (status, time_slot_start, execution_start, execution_end, runner,
         runner_process_id, attempts, error, return_value, last_seq, last_hash)
        = (nxt.status, nxt.time_slot_start, nxt.execution_start, nxt.execution_end,
           nxt.runner, nxt.runner_process_id, nxt.attempts, nxt.error,
           nxt.return_value, nxt.last_seq, nxt.last_hash)
    WHERE id = cur.id;
    RETURN nxt;
END
$append_folded$;
