-- Measurement only: the loaded jobs spread over seven priorities (-30 to 30) and two
-- queues, written behind the ledger's back (the rows no longer match their events:
-- never do this to a real database). Compare it with uniform_priority.sql, which
-- rewrites every row the same way but leaves them one priority, so that both copies
-- carry the same dead rows and index entries.
SELECT set_config('django_future.folded', 'on', false);
UPDATE django_future_scheduledjob
SET priority = (id % 7) * 10 - 30,
    queue = CASE WHEN id % 2 = 0 THEN 'emails' ELSE 'reports' END;
SELECT set_config('django_future.folded', '', false);
ANALYZE django_future_scheduledjob;
