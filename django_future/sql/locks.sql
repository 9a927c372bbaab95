-- Locks and queue limits: the arbiter of the claim.
--
-- Both are held by the job rows themselves, and by nothing else. A job with a
-- lock (schedule_job(lock="user-42")) holds it while it is claimed or running.
-- A job of a queue with a limit of N (DJANGO_FUTURE_QUEUE_LIMITS, the table
-- django_future_queuelimit) holds one of the queue's slots 0 .. N-1 while it
-- runs: the claim that starts it writes the slot on its row (column "slot")
-- and on its "started" event ({"slot": 2}), so that the fold and a rebuild
-- give the same row. Two partial unique indexes make an overlap impossible,
-- whatever writes the rows: django_future_lock_held (lock) and
-- django_future_slot_held (queue, slot), both over claimed and running jobs.
--
-- So nothing is ever left to free. The update that ends a run ("completed",
-- "failed", "abandoned", "released", "cancelled", or the row's deletion)
-- gives up its lock and its slot with it; a runner killed with -9 keeps them
-- until a live runner's recovery appends "abandoned" to its job, once its
-- lease has run out. (Up to migration 0011 each held name was a row of a
-- table of its own, inserted and deleted: 6 WAL records a job for a lock, 12
-- for a lock and a slot, where an entry of a partial index is one.)
--
-- Why the claim needs an arbiter, and not the snapshot alone. The claim steps
-- over blocked jobs with a snapshot test (django_future_due, claim.sql: "no
-- running job has my lock", "my queue has a free slot"). Under READ COMMITTED
-- two runners claiming at the same moment have different snapshots, and
-- neither sees what the other is doing: each can find a *different* job of
-- lock L to be the first unblocked one (a job of L inserted meanwhile with a
-- higher priority, or the first one locked by the other's FOR UPDATE SKIP
-- LOCKED and so skipped), and both would start. The row locks of SKIP LOCKED
-- serialize claims of the same job row only. So the snapshot test is a
-- filter (blocked jobs are stepped over inside the claim's index scan, never
-- claimed and handed back), and django_future_acquire is the arbiter.
--
-- How it decides, without ever waiting. A name (the lock, or one slot) is
-- first taken with a transaction-scoped advisory lock,
-- pg_try_advisory_xact_lock, which never waits: a name that another claim is
-- taking is lost at once. Holding it, the function looks at the job rows with
-- a fresh snapshot (each statement of a VOLATILE function takes one, and sees
-- the rows its caller's UPDATE has already written, so a batch never gives
-- one name twice): every claim that took the name before has ended, since a
-- transaction ends before its advisory locks are released, so what it wrote
-- is visible. Of two runners racing for a name exactly one takes it; the
-- other's claim skips the job. A lost race is a skip, never an overlap, never
-- an error and never a wait (two claims that each held one name and waited
-- for the other's would deadlock). The advisory locks end with the claim's
-- transaction; none is held across a job's run (runners that sit behind
-- PgBouncer in transaction mode keep no session, and a dead runner's names
-- must go with its lease, not with its connection).
--
-- The slot reaches the row through the transaction-local setting
-- django_future.slot: the claim's UPDATE calls this function in its WHERE
-- clause and reads the setting in its SET list, for the same row, before it
-- reads the next (claim.sql). Were that order ever broken, the unique index
-- would refuse the claim, not let two jobs share a slot.
--
-- Both or neither. A job with a lock in a limited queue takes its lock
-- first, then a slot; if no slot is free, the claim skips the job, and what
-- it held was only the transaction's advisory lock.
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

-- Take what job ``job`` needs to start: its lock (if any), then a slot of its
-- queue (if the queue has a limit), which it leaves in django_future.slot ('' for
-- none). True when it may start (the caller's UPDATE then makes it running,
-- which holds them); false, with the job added to django_future.lost, when
-- another job holds or is taking one of them. Called by the claim (claim.sql,
-- complete.sql) for jobs that have a lock or a limited queue only.
CREATE OR REPLACE FUNCTION django_future_acquire(job bigint, lock_name text, queue_name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE COST 1000 AS $acquire$
DECLARE
    -- The advisory locks' first key: the package's own space of names.
    space CONSTANT integer := hashtext('django_future.joblock');
    slots integer;
    chosen integer;
    flag text;  -- set_config's result, unused
BEGIN
    IF lock_name IS NOT NULL
       AND NOT pg_try_advisory_xact_lock(space, hashtext('lock:' || lock_name)) THEN
        RETURN django_future_lost(job);
    END IF;
    -- The queue's limit, if it has one, and the first slot that this snapshot shows
    -- free and that no other claim is taking: its advisory lock is taken here (and
    -- only its: the CASE tests the snapshot first).
    SELECT q.max_running,
           (SELECT n FROM generate_series(0, q.max_running - 1) n
            WHERE CASE WHEN EXISTS (SELECT FROM django_future_scheduledjob r
                                    WHERE r.queue = queue_name AND r.slot = n
                                      AND r.status IN ('claimed', 'running'))
                       THEN false
                       ELSE pg_try_advisory_xact_lock(
                                space, hashtext('queue:' || queue_name || '#' || n)) END
            -- No ORDER BY: a sort would test every slot, and take every free one's
            -- advisory lock; generate_series yields them in order, and LIMIT stops
            -- at the first.
            LIMIT 1)
    INTO slots, chosen
    FROM django_future_queuelimit q WHERE q.queue = queue_name;
    IF slots IS NOT NULL AND chosen IS NULL THEN
        -- No slot: the lock was only this transaction's advisory lock (both or neither).
        RETURN django_future_lost(job);
    END IF;
    -- Holding the names' advisory locks, look again with a fresh snapshot: a claim
    -- that took one before has ended, and what it wrote is visible now.
    IF (lock_name IS NOT NULL
        AND EXISTS (SELECT FROM django_future_scheduledjob r
                    WHERE r.lock = lock_name AND r.status IN ('claimed', 'running')))
       OR (chosen IS NOT NULL
           AND EXISTS (SELECT FROM django_future_scheduledjob r
                       WHERE r.queue = queue_name AND r.slot = chosen
                         AND r.status IN ('claimed', 'running'))) THEN
        RETURN django_future_lost(job);
    END IF;
    flag := set_config('django_future.slot', COALESCE(chosen::text, ''), true);
    RETURN true;
END
$acquire$;
