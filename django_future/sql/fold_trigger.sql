-- The fold trigger's function: every event reaches the job table through it,
-- except those of the writers that fold their own (see append.sql).
--
-- The triggers themselves are declared on JobEvent in models.py (pgtrigger):
--
-- * stamp_event, a BEFORE INSERT row trigger, only for rows that arrive
--   without a hash (hash.sql): their time is the statement's, their hash is
--   chained to the job's previous event;
-- * fold_events, an AFTER INSERT statement trigger, hands every event of the
--   statement to django_future_apply_events, which checks the stamps (so a
--   writer that brings its own hash can neither forge it nor backdate the
--   event), then folds them into the job table with django_future_fold
--   (fold.sql): set-based when each job has one event in the statement, one
--   by one otherwise. It runs inside the INSERT statement, so the event and
--   the job's row commit or roll back together. When a job becomes due-able
--   (scheduled, retried, released) it sends NOTIFY django_future, delivered
--   at commit, to wake sleeping runners.
--
-- fold_events and the job table's guard (written_by_ledger_only) stand aside
-- while the transaction-local setting django_future.folded is 'on', which only
-- the writers that fold their own events set, and clear before they return.

-- Fold the events of one INSERT statement (ordered by job and seq) into the
-- projection. A single event, or a statement in which some job has several
-- events, is folded one event at a time; otherwise (every job once: expiry,
-- recovery, a bulk INSERT into the ledger) with a few set-based statements.
-- Both ways check each event's stamps first and call the same fold.
--
-- Each way writes the job-row column list in its UPDATE, for speed: folding a
-- single event with the set-based statements instead (and a statement in
-- which a job has several events in rounds, every job's first event, then
-- every job's second, ...) made a single append, such as a cancel or a
-- failure, cost 1.75x the database time (a loop of 3,000 appends in one
-- backend, 6 rounds, minimum), and still 1.11x with the statements' plans
-- kept (plan_cache_mode = force_generic_plan). The runner's writers, which
-- fold their own events, do not come here (see append.sql).
CREATE OR REPLACE FUNCTION django_future_apply_events(evs django_future_jobevent[])
RETURNS void
LANGUAGE plpgsql AS $apply$
DECLARE
    one django_future_jobevent;
    cur django_future_scheduledjob;
    nxt django_future_scheduledjob;
    bad record;
    has_new boolean := false;
    has_deleted boolean;
    wake boolean := false;
    expected integer;
    changed integer;
BEGIN
    IF cardinality(evs) = 0 THEN
        RETURN;  -- statement triggers fire for INSERTs of no rows too
    END IF;

    IF cardinality(evs) = 1
       OR (SELECT count(*) > count(DISTINCT e.job_id) FROM unnest(evs) e) THEN
        FOREACH one IN ARRAY evs LOOP
            SELECT * INTO cur FROM django_future_scheduledjob WHERE id = one.job_id FOR UPDATE;
            -- (an event out of sequence is left to the fold, which says so)
            IF one.at <> statement_timestamp()
               OR (one.seq = COALESCE(cur.last_seq, 0) + 1 AND one.hash IS DISTINCT FROM
                       django_future_event_hash(cur.last_hash, one.job_id, one.seq, one.kind,
                                                one.at, one.runner, one.data)) THEN
                PERFORM django_future_refuse_stamp(
                    one.job_id, one.seq, one.at <> statement_timestamp());
            END IF;
            nxt := django_future_fold(cur, one);
            IF cur.id IS NULL THEN
                INSERT INTO django_future_scheduledjob SELECT nxt.*;
            ELSIF nxt.id IS NULL THEN
                DELETE FROM django_future_scheduledjob WHERE id = one.job_id;
            ELSE
                UPDATE django_future_scheduledjob SET
                    (status, time_slot_start, execution_start, execution_end, runner,
                     runner_process_id, attempts, error, return_value, last_seq, last_hash,
                     slot)
                    = (nxt.status, nxt.time_slot_start, nxt.execution_start, nxt.execution_end,
                       nxt.runner, nxt.runner_process_id, nxt.attempts, nxt.error,
                       nxt.return_value, nxt.last_seq, nxt.last_hash, nxt.slot)
                WHERE id = one.job_id;
            END IF;
            wake := wake OR nxt.status = 'scheduled';
        END LOOP;
    ELSE
        SELECT e.job_id, e.seq, e.at <> statement_timestamp() AS late INTO bad
        FROM unnest(evs) e
        LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id
        WHERE e.at <> statement_timestamp()
           OR (e.seq = COALESCE(j.last_seq, 0) + 1
               AND e.hash IS DISTINCT FROM django_future_event_hash(
                       j.last_hash, e.job_id, e.seq, e.kind, e.at, e.runner, e.data))
        LIMIT 1;
        IF FOUND THEN
            PERFORM django_future_refuse_stamp(bad.job_id, bad.seq, bad.late);
        END IF;

        SELECT bool_or(e.kind = 'scheduled'), bool_or(e.kind = 'deleted'),
               bool_or(e.kind IN ('retry', 'released')),
               count(*) FILTER (WHERE e.kind NOT IN ('scheduled', 'deleted'))
        INTO has_new, has_deleted, wake, expected
        FROM unnest(evs) e;

        IF has_new THEN
            INSERT INTO django_future_scheduledjob
            SELECT f.*
            FROM unnest(evs) e
            LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id
            CROSS JOIN LATERAL django_future_fold(j, e) f
            WHERE e.kind = 'scheduled';
        END IF;

        -- Every other kind changes a live job's row (the fold raises if the event
        -- does not follow from it).
        IF expected > 0 THEN
            UPDATE django_future_scheduledjob j SET
                (status, time_slot_start, execution_start, execution_end, runner,
                 runner_process_id, attempts, error, return_value, last_seq, last_hash, slot)
                = (SELECT f.status, f.time_slot_start, f.execution_start, f.execution_end,
                          f.runner, f.runner_process_id, f.attempts, f.error, f.return_value,
                          f.last_seq, f.last_hash, f.slot
                   FROM django_future_fold(j, e) f)
            FROM unnest(evs) e
            WHERE j.id = e.job_id AND e.kind NOT IN ('scheduled', 'deleted');
            GET DIAGNOSTICS changed = ROW_COUNT;
            IF changed <> expected THEN
                SELECT e.job_id, e.kind INTO bad FROM unnest(evs) e
                WHERE e.kind NOT IN ('scheduled', 'deleted')
                  AND NOT EXISTS (SELECT FROM django_future_scheduledjob j WHERE j.id = e.job_id)
                LIMIT 1;
                RAISE EXCEPTION 'django_future: no live job % to append "%" to (never scheduled, or deleted)',
                    bad.job_id, bad.kind;
            END IF;
        END IF;

        IF has_deleted THEN
            PERFORM django_future_fold(j, e)  -- raises unless the job may be deleted
            FROM unnest(evs) e
            LEFT JOIN django_future_scheduledjob j ON j.id = e.job_id
            WHERE e.kind = 'deleted';
            DELETE FROM django_future_scheduledjob j
            USING unnest(evs) e
            WHERE j.id = e.job_id AND e.kind = 'deleted';
        END IF;
    END IF;

    -- A run that ended (or a job cancelled) gave up its lock and its slot with
    -- the update above (locks.sql). These events are rare (failures, recovery,
    -- hand-backs), so when they free a lock or a slot they wake the sleeping
    -- workers, which the runner's completions do not (complete.sql says why).
    IF NOT wake AND EXISTS (
        SELECT FROM unnest(evs) e
        JOIN django_future_scheduledjob j ON j.id = e.job_id
        WHERE (j.lock IS NOT NULL OR j.slot IS NOT NULL)
          AND e.kind IN ('completed', 'failed', 'abandoned', 'released', 'cancelled')
    ) THEN
        wake := true;
    END IF;

    -- Wake sleeping workers (delivered at commit) when a job became due-able.
    IF has_new OR wake THEN
        PERFORM pg_notify('django_future', '');
    END IF;
END
$apply$;
