-- Locks and queue limits: the arbiter of the claim.
--
-- A job with a lock (schedule_job(lock="user-42")) holds the name
-- "lock:user-42" while it runs; a job of a queue with a limit of N
-- (DJANGO_FUTURE_QUEUE_LIMITS, the table django_future_queuelimit) holds one
-- of the names "queue:<queue>#0" .. "queue:<queue>#<N-1>". A held name is a row
-- of django_future_joblock (name PRIMARY KEY, job_id), inserted by the claim
-- that starts the job and deleted in the same transaction as the event that
-- ends its run: "completed" (complete.sql), and "failed", "abandoned",
-- "released" or "cancelled" (fold_trigger.sql). A runner killed with -9 keeps
-- its names until a live runner's recovery appends "abandoned" to its job,
-- once its lease has run out; then the next job takes them.
--
-- Why a table, and not the snapshot alone. The claim steps over blocked jobs
-- with a snapshot test (django_future_due, claim.sql: "no row holds my lock",
-- "my queue has a free slot"). Under READ COMMITTED two runners claiming at
-- the same moment have different snapshots, and neither sees what the other
-- is doing: each can find a *different* job of lock L to be the first
-- unblocked one (a job of L inserted meanwhile with a higher priority, or the
-- first one locked by the other's FOR UPDATE SKIP LOCKED and so skipped), and
-- both would start. The row locks of SKIP LOCKED serialize claims of the same
-- job row only. So the snapshot test is a filter (blocked jobs are stepped
-- over inside the claim's index scan, never claimed and handed back), and
-- this function is the arbiter: INSERT ... ON CONFLICT DO NOTHING into the
-- table's primary key checks the latest state, rows committed and rows still
-- being inserted, not the statement's snapshot. Of two runners racing for a
-- name exactly one inserts it; the other's claim skips the job. A lost race is
-- a skip, never an overlap and never an error.
--
-- Waiting. ON CONFLICT waits for a transaction that inserted the same name and
-- has not ended. Two claims (or batches) that each inserted one name and want
-- the other's would deadlock, so a name is first taken with a transaction-
-- scoped advisory lock, pg_try_advisory_xact_lock, which never waits: a name
-- another claim is inserting is lost at once. Only names that the snapshot
-- shows free are tried, so ON CONFLICT never meets a row whose deletion is
-- still in progress either (the snapshot shows such a row as held). The
-- advisory lock is released at commit or rollback, with the claim's
-- transaction; it is never held across a job's run (runners that sit behind
-- PgBouncer in transaction mode keep no session, and a dead runner's names
-- must go with its lease, not with its connection).
--
-- Both or neither. A job with a lock in a limited queue takes its lock first,
-- then a slot; if no slot is free it deletes the lock row it inserted, in the
-- same transaction, and the claim skips the job.
--
-- A lost race adds the job's id to the transaction-local setting
-- django_future.lost ("12,15,"), which the claim reads when it started
-- nothing: it claims again, a few times at most, passing those jobs over
-- (claim.sql). They must be passed over by id: the loser still holds their
-- rows locked, and FOR UPDATE SKIP LOCKED skips only other transactions'
-- locks. So a runner does not take "nothing claimed" for "nothing to do" (a
-- cron pass would end early) because another runner was one statement ahead.

-- Note that the claim lost the race for job ``job``; false.
CREATE OR REPLACE FUNCTION django_future_lost(job bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $lost$
DECLARE
    flag text;  -- set_config's result, unused
BEGIN
    flag := set_config('django_future.lost',
                       COALESCE(current_setting('django_future.lost', true), '') || job || ',',
                       true);
    RETURN false;
END
$lost$;

-- Take the names that job ``job`` needs to start: its lock (if any), then a
-- slot of its queue (if the queue has a limit). True when it holds all of them
-- (or needs none); false, holding none of them and with the job added to
-- django_future.lost, when another transaction holds or is taking one. Called by the claim
-- (claim.sql, complete.sql) for jobs that have a lock or a limited queue only.
CREATE OR REPLACE FUNCTION django_future_acquire(job bigint, lock_name text, queue_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE COST 1000 AS $acquire$
DECLARE
    -- The advisory locks' first key: the package's own space of names.
    space CONSTANT integer := hashtext('django_future.joblock');
    slots integer;
    held text;
    slot text;
BEGIN
    IF lock_name IS NOT NULL THEN
        held := 'lock:' || lock_name;
        IF NOT pg_try_advisory_xact_lock(space, hashtext(held)) THEN
            RETURN django_future_lost(job);
        END IF;
        INSERT INTO django_future_joblock (name, job_id, queue, acquired_at)
        VALUES (held, job, NULL, statement_timestamp())
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN django_future_lost(job);
        END IF;
    END IF;

    SELECT q.max_running INTO slots FROM django_future_queuelimit q WHERE q.queue = queue_name;
    IF slots IS NULL THEN
        RETURN true;
    END IF;
    FOR n IN 0 .. slots - 1 LOOP
        slot := 'queue:' || queue_name || '#' || n;
        CONTINUE WHEN EXISTS (SELECT FROM django_future_joblock l WHERE l.name = slot);
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(space, hashtext(slot));
        INSERT INTO django_future_joblock (name, job_id, queue, acquired_at)
        VALUES (slot, job, queue_name, statement_timestamp())
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            RETURN true;
        END IF;
    END LOOP;
    -- No slot: give the lock back (both or neither).
    IF held IS NOT NULL THEN
        DELETE FROM django_future_joblock l WHERE l.name = held AND l.job_id = job;
    END IF;
    RETURN django_future_lost(job);
END
$acquire$;
