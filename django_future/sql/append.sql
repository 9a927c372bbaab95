-- Appending events, the two ways.
--
-- django_future_append leaves the fold to the fold trigger (fold_trigger.sql);
-- the ledger's single appends (cancelling, failures, and the like) go through
-- it, by the "append" query of queries.sql.
--
-- The package's own hot writers (the runner's claim and completions, in
-- claim.sql and complete.sql, and bulk scheduling, bulk.sql) append their
-- events and fold them in the same statement, with the transition functions of
-- fold.sql. On the runner's path the fold trigger was most of the database's
-- work per job: pgtrigger's entry check, a transition table turned into an
-- array, the job's row read and locked a second time, the hash computed a
-- second time to check it, all to fold one event whose writer had just locked
-- the row and computed the hash itself (pgbench, 4 clients, one claim and one
-- completion per job: about 1,300-1,450 us of server time per job through the
-- trigger, 850-900 us with the writer folding).
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
