-- Named SQL used at run time. Each query starts with a "-- name: <name>" line,
-- followed by a one-line description; ``django_future.sql.query(name)`` loads it.
-- Parameters are psycopg named placeholders. The fold trigger
-- (fold_trigger.sql) turns every INSERT below into the matching change of the
-- job's row; the functions of append.sql, claim.sql, complete.sql, schedule.sql
-- and bulk.sql fold the events they append themselves.

-- name: schedule
-- Schedule one job: append its first event and create its row, folded in the
-- same statement (see schedule.sql). Relative times are resolved on the
-- database clock so that every runner and every web process agree on "now".
-- Returns the job's row, or no row (and writes nothing) if the job would
-- expire before it is due.
SELECT * FROM django_future_schedule_one(%(data)s::jsonb, %(start_at)s::timestamptz,
                                         %(start_in)s::interval, %(end_at)s::timestamptz,
                                         %(end_in)s::interval);

-- name: schedule_lines
-- One chunk of schedule_jobs(): one job per line, the JSON data of its
-- "scheduled" event. The new ids, in line order (see bulk.sql).
SELECT django_future_schedule_lines(%s);

-- name: schedule_unique
-- Schedule one job with a unique key (see unique.sql): the job's row and
-- created true; or, if a job holds the key, that job's row and created false,
-- and nothing written; or no row (nothing written) if the job would expire
-- before it is due. The columns by name: read by ScheduledJob.objects.raw.
SELECT (u.job).*, u.created
FROM django_future_schedule_unique(%(data)s::jsonb, %(start_at)s::timestamptz,
                                   %(start_in)s::interval, %(end_at)s::timestamptz,
                                   %(end_in)s::interval) u;

-- name: schedule_unique_lines
-- One chunk of schedule_jobs() that holds keyed jobs, as schedule_lines; a line
-- whose key was held gives the holder's id (see unique.sql).
SELECT django_future_schedule_unique_lines(%s);

-- name: append
-- Append the next event of one live job; the new seq, or NULL if the job is
-- gone, not in one of %(statuses)s, or not at seq %(seq)s (see append.sql).
SELECT django_future_append(%(job_id)s, %(kind)s, %(runner)s, %(data)s::jsonb,
                            %(statuses)s::text[], %(seq)s::integer);

-- name: complete
-- Completions of plain jobs, appended only at the seq the runner saw (see
-- complete.sql); the ids recorded. The runner sends this alone when
-- a slow batch keeps finished work waiting, or as it stops; otherwise
-- complete_and_claim carries its completions.
SELECT * FROM django_future_complete(%(done_ids)s::bigint[], %(done_seqs)s::integer[],
                                     %(done_values)s::text[],
                                     %(done_seconds)s::double precision[],
                                     %(done_results)s::jsonb[], %(runner)s::text);

-- name: complete_and_claim
-- The completions of plain jobs (a JSON array of [id, seq, return value,
-- seconds(, result)]), then the next claim, in one statement (see complete.sql):
-- the claimed jobs, after the row of each job whose completion was refused.
-- The runner prepares it once per connection.
SELECT * FROM django_future_complete_and_claim(%(done)s::jsonb, %(now)s::timestamptz,
                                               %(runner)s::text, %(runner_id)s::bigint,
                                               %(limit)s::integer, %(due_by)s::timestamptz,
                                               %(queues)s::text[],
                                               %(exclude_queues)s::text[]);

-- name: event_at
-- When one event of a job was appended (%(job_id)s, %(seq)s), or no row: the
-- task backend's task_finished reads its completion's time, and nothing else.
SELECT at FROM django_future_jobevent WHERE job_id = %(job_id)s AND seq = %(seq)s;

-- name: retry
-- After a failed attempt: schedule the next one after %(delay)s, unless the
-- job has no attempts left or the retry would fall after its expiry.
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
SELECT id, last_seq + 1, 'retry', statement_timestamp(), %(runner)s,
       jsonb_build_object(
           'attempt', attempts + 1,
           'of', max_attempts,
           'delay', extract(epoch FROM %(delay)s::interval),
           'due', statement_timestamp() + %(delay)s::interval,
           'reason', %(reason)s::text)
FROM django_future_scheduledjob
WHERE id = %(job_id)s
  AND status = 'failed'
  AND attempts < max_attempts
  AND (time_slot_end IS NULL OR statement_timestamp() + %(delay)s::interval <= time_slot_end)
FOR UPDATE
RETURNING seq;

-- name: expire
-- Append "expired" to every scheduled job whose window closed before now.
-- Rows another runner is working on are skipped, not waited for.
WITH gone AS (
    SELECT id, last_seq, time_slot_end
    FROM django_future_scheduledjob
    WHERE status = 'scheduled'
      AND time_slot_end < COALESCE(%(now)s::timestamptz, statement_timestamp())
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
SELECT id, last_seq + 1, 'expired', statement_timestamp(), %(runner)s,
       jsonb_build_object('time_slot_end', time_slot_end,
                          'now', COALESCE(%(now)s::timestamptz, statement_timestamp()))
FROM gone
RETURNING job_id;

-- name: claim
-- Claim the first due jobs of this runner's queues (highest priority, then
-- oldest) and read back what it holds, in one statement, which the runner
-- prepares once per connection (see claim.sql).
SELECT * FROM django_future_claim(%(now)s::timestamptz, %(runner)s::text, %(runner_id)s::bigint,
                                  %(limit)s::integer, %(kind)s::text, %(due_by)s::timestamptz,
                                  %(queues)s::text[], %(exclude_queues)s::text[]);

-- name: recover
-- Jobs in the hands of a runner that is gone: its lease ran out (killed, lost
-- machine, lost connection) or it stopped without finishing them. A running
-- job gets "abandoned"; a claimed, never started one is "released".
WITH lost AS (
    SELECT j.id, j.last_seq, j.status, j.runner_process_id, j.runner,
           r.heartbeat_at, r.lease_expires_at, r.stopped_at,
           'RunnerLost: runner ' || coalesce(j.runner, '?') || CASE
               WHEN r.stopped_at IS NOT NULL THEN ' stopped without finishing the job'
               WHEN r.id IS NULL THEN ' is unknown'
               ELSE ' stopped renewing its lease (last heartbeat ' || r.heartbeat_at::text
                    || ', lease ran out ' || r.lease_expires_at::text || ')'
           END AS reason
    FROM django_future_scheduledjob j
    LEFT JOIN django_future_runnerprocess r ON r.id = j.runner_process_id
    WHERE j.status IN ('claimed', 'running')
      AND (r.id IS NULL
           OR r.stopped_at IS NOT NULL
           OR r.lease_expires_at < statement_timestamp())
    ORDER BY j.id
    FOR UPDATE OF j SKIP LOCKED
)
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
SELECT id, last_seq + 1,
       CASE status WHEN 'running' THEN 'abandoned' ELSE 'released' END,
       statement_timestamp(), %(runner)s,
       jsonb_build_object(
           'runner_id', runner_process_id,
           'lost_runner', runner,
           'last_heartbeat', heartbeat_at,
           'lease_expired', lease_expires_at,
           'stopped', stopped_at,
           'exception', reason,
           'error', reason)
FROM lost
RETURNING job_id, kind;

-- name: release
-- Hand back jobs this runner started with a batch but did not call (and claimed
-- ones, which the runner no longer makes: see fold.sql): the attempt does not count.
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data)
SELECT id, last_seq + 1, 'released', statement_timestamp(), %(runner)s,
       jsonb_build_object('reason', %(reason)s::text)
FROM django_future_scheduledjob
WHERE id = ANY(%(job_ids)s::bigint[])
  AND status IN ('claimed', 'running')
  AND runner_process_id = %(runner_id)s
ORDER BY id
FOR UPDATE
RETURNING job_id;

-- name: next_due
-- Seconds until the next scheduled job of these queues is due (NULL when none
-- is scheduled), for a sleeping worker. The claimable index is in priority
-- order, so the earliest job is looked up once per priority in use: the
-- recursive part finds the priorities (each step one probe of the index), and
-- each priority's first job of the worker's queues is the first of its range.
WITH RECURSIVE priorities AS (
    (SELECT priority FROM django_future_scheduledjob
     WHERE status = 'scheduled' ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT j.priority FROM django_future_scheduledjob j
            WHERE j.status = 'scheduled' AND j.priority < p.priority
            ORDER BY j.priority DESC LIMIT 1)
    FROM priorities p
    WHERE p.priority IS NOT NULL
)
SELECT extract(epoch FROM min(first.due) - statement_timestamp())
FROM priorities p
CROSS JOIN LATERAL (
    -- A job blocked by its lock or its queue's limit (locks.sql) counts as due a
    -- second from now, not now: the claim would step over it, and a worker that
    -- counted it would not sleep at all while the lock is held. Freeing a lock
    -- sends no NOTIFY (a NOTIFY serializes the commits of every transaction that
    -- sends one, and the runner that frees a lock claims next in the same
    -- statement), so a sleeping worker looks again within a second while jobs
    -- wait for one.
    SELECT CASE WHEN (j.lock IS NOT NULL
                      AND EXISTS (SELECT FROM django_future_scheduledjob r
                                  WHERE r.lock = j.lock
                                    AND r.status IN ('claimed', 'running')))
                     OR j.queue = ANY(ARRAY(
                         SELECT q.queue FROM django_future_queuelimit q
                         WHERE q.max_running <= (
                             SELECT count(*) FROM django_future_scheduledjob r
                             WHERE r.queue = q.queue AND r.slot IS NOT NULL
                               AND r.status IN ('claimed', 'running'))))
                THEN greatest(j.time_slot_start, statement_timestamp() + interval '1 second')
                ELSE j.time_slot_start END AS due
    FROM django_future_scheduledjob j
    WHERE j.status = 'scheduled' AND j.priority = p.priority
      AND (%(queues)s::text[] IS NULL OR j.queue = ANY(%(queues)s::text[]))
      AND (%(exclude_queues)s::text[] IS NULL OR j.queue <> ALL(%(exclude_queues)s::text[]))
    ORDER BY j.time_slot_start
    LIMIT 1
) first;

-- name: register_runner
-- A runner announces itself, with a lease that its heartbeat renews, and
-- forgets runners that stopped or went silent more than a day ago. Returns its
-- id, its backend's pid and the database's clock (a pass's "now").
WITH forget AS (
    DELETE FROM django_future_runnerprocess
    WHERE coalesce(stopped_at, lease_expires_at) < statement_timestamp() - interval '1 day'
)
INSERT INTO django_future_runnerprocess
    (hostname, pid, identity, started_at, heartbeat_at, lease_expires_at)
VALUES (%(hostname)s, %(pid)s, %(identity)s, statement_timestamp(), statement_timestamp(),
        statement_timestamp() + %(lease)s::interval)
RETURNING id, pg_backend_pid(), statement_timestamp();

-- name: heartbeat
-- Renew this runner's lease. Returns nothing if the runner was marked stopped.
UPDATE django_future_runnerprocess
SET heartbeat_at = statement_timestamp(),
    lease_expires_at = statement_timestamp() + %(lease)s::interval
WHERE id = %(runner_id)s AND stopped_at IS NULL
RETURNING id;

-- name: stop_runner
-- A runner leaves: its jobs, if any are still in hand, are recoverable at once.
UPDATE django_future_runnerprocess
SET stopped_at = statement_timestamp()
WHERE id = %(runner_id)s AND stopped_at IS NULL;

-- name: verify
-- Jobs whose row differs from what their events fold to (missing, extra or
-- changed), or whose events cannot be folded at all.
SELECT coalesce(j.id, r.job_id) AS job_id,
       to_jsonb(j) AS projection,
       CASE WHEN (r.folded).id IS NULL THEN NULL ELSE to_jsonb(r.folded) END AS folded,
       r.error
FROM (
    SELECT ids.job_id, f.folded, f.error
    FROM (SELECT DISTINCT job_id FROM django_future_jobevent) ids
    CROSS JOIN LATERAL django_future_try_replay(ids.job_id) f
) r
FULL JOIN django_future_scheduledjob j ON j.id = r.job_id
WHERE r.error IS NOT NULL
   OR ((r.folded).id IS NULL AND j.id IS NOT NULL)
   OR ((r.folded).id IS NOT NULL AND j.id IS NULL)
   OR ((r.folded).id IS NOT NULL AND to_jsonb(j) IS DISTINCT FROM to_jsonb(r.folded))
ORDER BY 1;

-- name: verify_chain
-- Events whose hash does not follow from the job's previous event, and gaps in
-- a job's sequence: what editing or deleting history behind the triggers leaves.
SELECT job_id, seq, kind, problem
FROM (
    SELECT e.job_id, e.seq, e.kind, e.hash,
           lag(e.seq) OVER w AS prev_seq,
           django_future_event_hash(lag(e.hash) OVER w, e.job_id, e.seq, e.kind, e.at,
                                    e.runner, e.data) AS expected
    FROM django_future_jobevent e
    WINDOW w AS (PARTITION BY e.job_id ORDER BY e.seq)
) chain
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN prev_seq IS NULL AND seq <> 1 THEN
            'events 1 to ' || (seq - 1) || ' are missing'
        WHEN prev_seq IS NOT NULL AND seq <> prev_seq + 1 THEN
            'events ' || (prev_seq + 1) || ' to ' || (seq - 1) || ' are missing'
        WHEN hash IS DISTINCT FROM expected THEN
            'its hash does not match its contents and the previous event: it was changed'
    END AS problem
) p
WHERE problem IS NOT NULL
ORDER BY job_id, seq;

-- name: rebuild
-- Write every live job's row exactly as its events fold to (after the table was emptied).
INSERT INTO django_future_scheduledjob
SELECT f.*
FROM (SELECT DISTINCT job_id FROM django_future_jobevent) ids
CROSS JOIN LATERAL django_future_replay(ids.job_id) f
WHERE f.id IS NOT NULL;

-- name: prunable
-- Finished jobs whose last event is older than %(cutoff)s: complete, failed
-- (with no retry pending), expired or cancelled, or already deleted. With the
-- hash of their last event, for the prune record.
SELECT e.job_id, e.hash, c.n
FROM (
    SELECT job_id, max(seq) AS last_seq, count(*) AS n, max(at) AS last_at
    FROM django_future_jobevent
    GROUP BY job_id
) c
JOIN django_future_jobevent e ON e.job_id = c.job_id AND e.seq = c.last_seq
LEFT JOIN django_future_scheduledjob j ON j.id = c.job_id
WHERE c.last_at < %(cutoff)s
  AND (j.id IS NULL OR j.status IN ('complete', 'failed', 'expired', 'cancelled'))
ORDER BY e.job_id;

-- name: status_counts
-- Jobs by status, as they stand (or as they stood at %(as_of)s).
SELECT status, count(*)
FROM (
    SELECT status FROM django_future_scheduledjob WHERE %(as_of)s::timestamptz IS NULL
    UNION ALL
    SELECT status FROM django_future_jobs_as_of(%(as_of)s::timestamptz)
    WHERE %(as_of)s::timestamptz IS NOT NULL
) jobs
GROUP BY status
ORDER BY status;

-- name: oldest_due
-- The scheduled job that has been due longest, and for how long (seconds).
SELECT id, callable_name, extract(epoch FROM
           COALESCE(%(as_of)s::timestamptz, statement_timestamp()) - time_slot_start)
FROM (
    SELECT id, callable_name, time_slot_start, status FROM django_future_scheduledjob
    WHERE %(as_of)s::timestamptz IS NULL
    UNION ALL
    SELECT id, callable_name, time_slot_start, status
    FROM django_future_jobs_as_of(%(as_of)s::timestamptz)
    WHERE %(as_of)s::timestamptz IS NOT NULL
) jobs
WHERE status = 'scheduled'
  AND time_slot_start <= COALESCE(%(as_of)s::timestamptz, statement_timestamp())
ORDER BY time_slot_start, id
LIMIT 1;

-- name: in_hand_by_runner
-- Claimed and running jobs per runner, with what is known of the runner: how long
-- ago its last heartbeat was, how long until its lease runs out (negative: ran
-- out that long ago; its jobs are then recoverable), and whether it signed off.
SELECT j.runner, count(*) FILTER (WHERE j.status = 'running') AS running,
       count(*) FILTER (WHERE j.status = 'claimed') AS claimed,
       min(extract(epoch FROM statement_timestamp() - p.heartbeat_at)) AS heartbeat_age,
       max(extract(epoch FROM p.lease_expires_at - statement_timestamp())) AS lease_left,
       bool_or(p.stopped_at IS NOT NULL) AS stopped
FROM django_future_scheduledjob j
LEFT JOIN django_future_runnerprocess p ON p.id = j.runner_process_id
WHERE j.status IN ('running', 'claimed')
GROUP BY j.runner
ORDER BY j.runner;

-- name: periodic_define
-- Record the periodic schedules' definitions in force and the removal of the
-- others; each given schedule's since and newest tick (see periodic.sql).
SELECT * FROM django_future_periodic_define(%(defs)s::jsonb, %(runner)s::text);

-- name: periodic_enqueue
-- Make the jobs of the given due ticks that no runner made yet (see
-- periodic.sql): the ticks made, then a row of NULLs with the clock.
SELECT d.schedule, d.tick, d.job_id, COALESCE(%(now)s::timestamptz, statement_timestamp())
FROM django_future_periodic_enqueue(%(ticks)s::jsonb, %(now)s::timestamptz, %(runner)s::text) d
UNION ALL
SELECT NULL, NULL, NULL, COALESCE(%(now)s::timestamptz, statement_timestamp());

-- name: periodic_overview
-- The newest tick made of each named schedule, its job and that job's outcome,
-- with the clock (scheduledjobs periodic).
SELECT DISTINCT ON (schedule) schedule, tick, job_id, outcome,
       COALESCE(%(now)s::timestamptz, statement_timestamp())
FROM django_future_periodic_ticks
WHERE schedule = ANY(%(names)s::text[])
ORDER BY schedule, tick DESC;

-- name: dashboard_attempts
-- The admin dashboard's bars (django_future/dashboard): each attempt that ran
-- during [%(start)s, %(end)s): started there, or ended there after starting
-- before, or still running since before it. Only events inside the window are
-- scanned (the BRIN index on "at"); each attempt's other end, its job's row, its
-- first event and a retry that followed are looked up one by one, by (job_id, seq)
-- or id (LATERAL ... LIMIT 1: the planner must not join them by scanning a table).
WITH first AS (  -- the first attempts started in the window, before any join
    SELECT s.job_id, s.seq, s.runner, s.at
    FROM django_future_jobevent s
    WHERE s.at >= %(start)s AND s.at < %(end)s AND s.kind = 'started'
    ORDER BY s.at, s.job_id
    LIMIT %(limit)s
), a AS (
    SELECT s.job_id, s.runner, s.at AS started, x.at AS ended,
           COALESCE(x.kind, 'running') AS outcome, x.seq AS end_seq
    FROM first s
    LEFT JOIN django_future_jobevent x ON x.job_id = s.job_id AND x.seq = s.seq + 1
    UNION ALL
    SELECT x.job_id, s.runner, s.at, x.at, x.kind, x.seq
    FROM django_future_jobevent x
    CROSS JOIN LATERAL (  -- LIMIT 1: a lookup per event, never a scan of the ledger
        SELECT p.runner, p.at FROM django_future_jobevent p
        WHERE p.job_id = x.job_id AND p.seq = x.seq - 1 AND p.kind = 'started'
        LIMIT 1) s
    WHERE x.at >= %(start)s AND x.at < %(end)s
      AND x.kind IN ('completed', 'failed', 'abandoned', 'released')
      AND s.at < %(start)s
    UNION ALL
    SELECT j.id, j.runner, j.execution_start, NULL, 'running', NULL
    FROM django_future_scheduledjob j
    WHERE j.status = 'running' AND j.execution_start < %(start)s
)
SELECT a.job_id, COALESCE(a.runner, '?'), a.started, a.ended, a.outcome,
       r.job_id IS NOT NULL AS retried,
       COALESCE(j.callable_name, f.data->>'callable_name'),
       COALESCE(j.args, f.data->'args', '[]'::jsonb)::text
FROM a
LEFT JOIN LATERAL (SELECT * FROM django_future_scheduledjob WHERE id = a.job_id LIMIT 1) j
       ON true
LEFT JOIN LATERAL (SELECT data FROM django_future_jobevent
                   WHERE j.id IS NULL AND job_id = a.job_id AND seq = 1 LIMIT 1) f ON true
LEFT JOIN LATERAL (SELECT job_id FROM django_future_jobevent
                   WHERE job_id = a.job_id AND seq = a.end_seq + 1 AND kind = 'retry' LIMIT 1) r
       ON true
ORDER BY a.started, a.job_id
LIMIT %(limit)s;

-- name: dashboard_unrun
-- The dashboard's marks of jobs that ended without running in the window:
-- expired and cancelled events, with the job's callable.
SELECT e.job_id, e.kind, e.at, COALESCE(j.callable_name, f.data->>'callable_name')
FROM django_future_jobevent e
LEFT JOIN LATERAL (SELECT * FROM django_future_scheduledjob WHERE id = e.job_id LIMIT 1) j
       ON true
LEFT JOIN LATERAL (SELECT data FROM django_future_jobevent
                   WHERE j.id IS NULL AND job_id = e.job_id AND seq = 1 LIMIT 1) f ON true
WHERE e.at >= %(start)s AND e.at < %(end)s AND e.kind IN ('expired', 'cancelled')
ORDER BY e.at
LIMIT %(limit)s;

-- name: dashboard_throughput
-- Attempts finished in each bucket of %(step)s minutes of the window: completed,
-- and failed or abandoned.
SELECT date_bin(make_interval(mins => %(step)s), e.at, %(start)s) AS bucket,
       count(*) FILTER (WHERE e.kind = 'completed'),
       count(*) FILTER (WHERE e.kind <> 'completed')
FROM django_future_jobevent e
WHERE e.at >= %(start)s AND e.at < %(end)s AND e.kind IN ('completed', 'failed', 'abandoned')
GROUP BY 1
ORDER BY 1;

-- name: dashboard_failing
-- The callables that failed most in the window (failed or abandoned attempts),
-- with the newest failure's job and error text.
WITH f AS (
    SELECT e.job_id, e.at, COALESCE(e.data->>'error', e.kind) AS error,
           COALESCE(j.callable_name, s.data->>'callable_name') AS callable
    FROM django_future_jobevent e
    LEFT JOIN LATERAL (SELECT * FROM django_future_scheduledjob WHERE id = e.job_id LIMIT 1) j
       ON true
    LEFT JOIN LATERAL (SELECT data FROM django_future_jobevent
                   WHERE j.id IS NULL AND job_id = e.job_id AND seq = 1 LIMIT 1) s ON true
    WHERE e.at >= %(start)s AND e.at < %(end)s AND e.kind IN ('failed', 'abandoned')
)
SELECT callable, count(*), max(at),
       (array_agg(job_id ORDER BY at DESC))[1], (array_agg(error ORDER BY at DESC))[1]
FROM f
GROUP BY callable
ORDER BY count(*) DESC, max(at) DESC
LIMIT %(limit)s;

-- name: dashboard_waiting
-- Queue depth and lag at each of %(samples)s instants of the window: the waits
-- of due jobs, [since, until), are those of the jobs due and scheduled now (from
-- their rows) and those that ended (started, cancelled, expired) between the
-- window's start and %(until)s, each with the event that began the wait
-- (scheduled, retry or released) found by (job_id, seq). Per queue and instant:
-- the jobs waiting and the seconds the oldest of them had waited.
WITH waits AS (
    SELECT j.queue, greatest(j.time_slot_start, j.created_at) AS since,
           NULL::timestamptz AS until
    FROM django_future_scheduledjob j
    WHERE j.status = 'scheduled' AND j.time_slot_start < %(end)s
    UNION ALL
    SELECT COALESCE(j.queue, f.data->>'queue', 'default'),
           CASE p.kind
               WHEN 'scheduled' THEN greatest((p.data->>'time_slot_start')::timestamptz, p.at)
               WHEN 'retry' THEN (p.data->>'due')::timestamptz
               ELSE p.at END,
           e.at
    FROM django_future_jobevent e
    CROSS JOIN LATERAL (  -- LIMIT 1: a lookup per event, never a scan of the ledger
        SELECT b.kind, b.at, b.data FROM django_future_jobevent b
        WHERE b.job_id = e.job_id AND b.seq = e.seq - 1
        LIMIT 1) p
    LEFT JOIN LATERAL (SELECT * FROM django_future_scheduledjob WHERE id = e.job_id LIMIT 1) j
       ON true
    LEFT JOIN LATERAL (SELECT data FROM django_future_jobevent
                   WHERE j.id IS NULL AND job_id = e.job_id AND seq = 1 LIMIT 1) f ON true
    WHERE e.at >= %(start)s AND e.at < %(until)s AND e.kind IN ('started', 'cancelled', 'expired')
), instants AS (
    SELECT %(start)s::timestamptz + (%(end)s::timestamptz - %(start)s::timestamptz) * i
           / %(samples)s AS t
    FROM generate_series(1, %(samples)s) i
)
SELECT w.queue, i.t, count(*), max(extract(epoch FROM i.t - w.since))
FROM instants i
JOIN waits w ON w.since <= i.t AND (w.until IS NULL OR w.until > i.t)
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: queue_limits
-- The queue limits of DJANGO_FUTURE_QUEUE_LIMITS, written by a runner as it starts
-- (locks.sql): those of its settings replace every other; %(queues)s and
-- %(limits)s are two arrays of the same length.
WITH gone AS (
    DELETE FROM django_future_queuelimit WHERE queue <> ALL(%(queues)s::text[])
)
INSERT INTO django_future_queuelimit (queue, max_running)
SELECT * FROM unnest(%(queues)s::text[], %(limits)s::integer[])
ON CONFLICT (queue) DO UPDATE SET max_running = EXCLUDED.max_running
WHERE django_future_queuelimit.max_running <> EXCLUDED.max_running;

-- name: metrics_fold
-- Fold the events appended since the last scrape into the metrics' totals, at most
-- %(max_events)s new ones (see metrics.sql); NULL when another scrape is folding.
SELECT django_future_metrics_fold(%(max_events)s::integer);

-- name: metrics_live_jobs
-- Jobs not finished, by status and queue; each half reads one partial index
-- (django_future_claimable, django_future_in_hand), never the finished jobs.
SELECT status, queue, count(*) FROM django_future_scheduledjob
WHERE status = 'scheduled' GROUP BY status, queue
UNION ALL
SELECT status, queue, count(*) FROM django_future_scheduledjob
WHERE status IN ('claimed', 'running') GROUP BY status, queue;

-- name: metrics_due
-- Per queue: the jobs due now and how long the oldest of them has been due (seconds).
SELECT queue, count(*),
       extract(epoch FROM statement_timestamp() - min(time_slot_start))::double precision
FROM django_future_scheduledjob
WHERE status = 'scheduled' AND time_slot_start <= statement_timestamp()
GROUP BY queue;

-- name: metrics_runners
-- Runner processes that have not signed off: those whose lease is current (alive),
-- and those whose lease ran out (gone without signing off; their jobs are recovered).
SELECT count(*) FILTER (WHERE lease_expires_at > statement_timestamp()),
       count(*) FILTER (WHERE lease_expires_at <= statement_timestamp())
FROM django_future_runnerprocess
WHERE stopped_at IS NULL;

-- name: metrics_totals
-- The folded totals: events per kind, then each histogram's buckets (not cumulative),
-- then the histograms' bounds, then the newest event id less the fold's mark (events not yet folded).
SELECT 'events', kind, NULL::double precision, events, NULL::double precision
FROM django_future_metricevents
UNION ALL
SELECT 'bucket', histogram, le, jobs, seconds FROM django_future_metricbucket
UNION ALL
SELECT 'bound', NULL, b, 0, 0 FROM unnest(django_future_metric_bounds()) AS b
UNION ALL
SELECT 'backlog', NULL, NULL,
       GREATEST(0, COALESCE((SELECT max(id) FROM django_future_jobevent), 0)
                   - COALESCE((SELECT upto FROM django_future_metricmark WHERE id = 1), 0)),
       NULL;
