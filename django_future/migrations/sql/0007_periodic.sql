-- Frozen for migration 0007_periodic: the live files of django_future/sql/ below,
-- as they stood when it was written. Do not edit: the live files are where the
-- current definitions are (see django_future/sql/__init__.py).

-- ---- periodic.sql

-- Periodic schedules: recording their definitions, making one job per tick,
-- and the view of their ticks (docs/periodic.md, docs/audit.md).
--
-- Python (django_future.periodic) reads the cron expressions and decides which
-- ticks are due; the database decides which of them become jobs. A tick is a
-- row of django_future_periodictick, unique on (schedule, tick), inserted in
-- the same transaction as its job's "scheduled" event: however many runners
-- offer the same tick at once, one insert wins and makes the job, the others
-- wait for it on the unique index and then insert nothing. The job table
-- cannot hold that constraint, because its rows leave (-d, prune) while a tick
-- that was made must stay made.

-- Record the definitions in force, given as a JSON array of {"schedule",
-- "hash", "definition"}: a schedule whose last recorded hash differs gets a
-- row, and a schedule whose last row is a definition but which is no longer
-- given gets a removal (hash '', definition NULL). Returns, for each given
-- schedule, when its current definition was recorded ("since": ticks before it
-- belong to an earlier definition, and are not made) and its newest tick, with
-- the database's clock ("periodic_define" in queries.sql).
CREATE OR REPLACE FUNCTION django_future_periodic_define(defs jsonb, runner_name text)
RETURNS TABLE (schedule text, since timestamptz, last_tick timestamptz, now timestamptz)
LANGUAGE plpgsql AS $periodic_define$
#variable_conflict use_column
BEGIN
    -- One recorder at a time, so that runners starting together record a change
    -- once. Each statement below then sees what the one before committed.
    PERFORM pg_advisory_xact_lock(hashtext('django_future_periodic_define'));
    INSERT INTO django_future_periodicchange (schedule, hash, definition, at, runner)
    SELECT d->>'schedule', d->>'hash', d->'definition', statement_timestamp(), runner_name
    FROM jsonb_array_elements(defs) d
    WHERE (d->>'hash') IS DISTINCT FROM (
        SELECT c.hash FROM django_future_periodicchange c
        WHERE c.schedule = d->>'schedule' ORDER BY c.id DESC LIMIT 1);
    INSERT INTO django_future_periodicchange (schedule, hash, definition, at, runner)
    SELECT last.schedule, '', NULL, statement_timestamp(), runner_name
    FROM (SELECT DISTINCT ON (c.schedule) c.schedule, c.hash
          FROM django_future_periodicchange c
          ORDER BY c.schedule, c.id DESC) last
    WHERE last.hash <> ''
      AND NOT EXISTS (SELECT FROM jsonb_array_elements(defs) d
                      WHERE d->>'schedule' = last.schedule);
    RETURN QUERY
    SELECT d->>'schedule',
           (SELECT c.at FROM django_future_periodicchange c
            WHERE c.schedule = d->>'schedule' ORDER BY c.id DESC LIMIT 1),
           (SELECT max(t.tick) FROM django_future_periodictick t
            WHERE t.schedule = d->>'schedule'),
           statement_timestamp()
    FROM jsonb_array_elements(defs) d;
END
$periodic_define$;


-- Make the job of each given tick that has none yet. ticks is a JSON array of
-- {"schedule", "tick", "hash", "expires" (seconds after the tick), "data" (the
-- job's "scheduled" event data, without its window)}. A tick is made only if it
-- is not in the future (at_now, or the database's clock) and is newer than the
-- schedule's newest tick (a runner that knew less than another offers nothing
-- older). Ticks are inserted in (schedule, tick) order, so that two runners
-- offering the same ticks wait for each other in one order, never in a cycle.
-- Returns the ticks it made, with their jobs ("periodic_enqueue" in queries.sql).
CREATE OR REPLACE FUNCTION django_future_periodic_enqueue(
    ticks jsonb, at_now timestamptz, runner_name text
) RETURNS TABLE (schedule text, tick timestamptz, job_id bigint)
LANGUAGE plpgsql AS $periodic_enqueue$
#variable_conflict use_column
DECLARE
    clock timestamptz := COALESCE(at_now, statement_timestamp());
    job_ids regclass := pg_get_serial_sequence('django_future_scheduledjob', 'id')::regclass;
    g record;
    made bigint;
    count integer := 0;
    e django_future_jobevent;
    job django_future_scheduledjob;
BEGIN
    FOR g IN
        SELECT x->>'schedule' AS name, (x->>'tick')::timestamptz AS at, x->>'hash' AS hash,
               make_interval(secs => (x->>'expires')::double precision) AS expires,
               x->'data' AS data
        FROM jsonb_array_elements(ticks) x
        ORDER BY 1, 2
    LOOP
        CONTINUE WHEN g.at > clock OR g.at <= COALESCE(
            (SELECT max(t.tick) FROM django_future_periodictick t WHERE t.schedule = g.name),
            '-infinity');
        INSERT INTO django_future_periodictick AS t
            (schedule, tick, job_id, definition, enqueued_at, runner)
        VALUES (g.name, g.at, nextval(job_ids), g.hash, statement_timestamp(), runner_name)
        ON CONFLICT ON CONSTRAINT django_future_one_job_per_tick DO NOTHING
        RETURNING t.job_id INTO made;
        CONTINUE WHEN made IS NULL;
        -- The job, as schedule_one makes it (schedule.sql), under the id just taken.
        e.job_id := made;
        e.seq := 1;
        e.kind := 'scheduled';
        e.at := statement_timestamp();
        e.data := g.data || jsonb_build_object(
            'time_slot_start', g.at, 'time_slot_end', g.at + g.expires,
            'periodic', jsonb_build_object('schedule', g.name, 'tick', g.at,
                                           'definition', g.hash));
        e.hash := django_future_event_hash(NULL, e.job_id, 1, 'scheduled', e.at, runner_name,
                                           e.data);
        job := django_future_fold(NULL, e);  -- raises if the event may not make a job
        PERFORM set_config('django_future.folded', 'on', true);
        INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
        VALUES (e.job_id, e.seq, e.kind, e.at, runner_name, e.data, e.hash);
        INSERT INTO django_future_scheduledjob SELECT job.*;
        PERFORM set_config('django_future.folded', '', true);
        schedule := g.name;
        tick := g.at;
        job_id := made;
        RETURN NEXT;
        made := NULL;
        count := count + 1;
    END LOOP;
    IF count > 0 THEN
        PERFORM pg_notify('django_future', '');  -- wake sleeping workers at commit
    END IF;
END
$periodic_enqueue$;


-- One row per tick made: its schedule, tick time, job, the definition it was
-- made under, the job's outcome (its status while its row exists; from its last
-- event but "deleted" once -d removed the row; 'pruned' once prune removed its
-- events), when
-- its first attempt started and its lateness (that start minus the tick).
CREATE OR REPLACE VIEW django_future_periodic_ticks AS
SELECT
    t.schedule,
    t.tick,
    t.job_id,
    t.definition,
    t.enqueued_at,
    t.runner AS enqueued_by,
    COALESCE(j.status,
             CASE l.kind WHEN 'completed' THEN 'complete' ELSE l.kind END,
             'pruned') AS outcome,
    s.started_at,
    s.started_at - t.tick AS lateness
FROM django_future_periodictick t
LEFT JOIN django_future_scheduledjob j ON j.id = t.job_id
LEFT JOIN LATERAL (
    SELECT e.kind FROM django_future_jobevent e
    WHERE e.job_id = t.job_id AND e.kind <> 'deleted'
    ORDER BY e.seq DESC LIMIT 1) l ON j.id IS NULL
LEFT JOIN LATERAL (
    SELECT min(e.at) AS started_at FROM django_future_jobevent e
    WHERE e.job_id = t.job_id AND e.kind = 'started') s ON true;
