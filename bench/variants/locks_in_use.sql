-- Measurement only: every loaded job takes a lock (64 names, so that four runners
-- seldom wait for one another) and is in the queue "limited", limited to 4 at once:
-- each claim takes a lock and a slot through the arbiter (sql/locks.sql), and each
-- completion frees both. Written behind the ledger's back (the rows no longer match
-- their events: never do this to a real database). Compare it with locks_none.sql,
-- which rewrites every row the same way but leaves them without a lock or a limit, so
-- that both copies carry the same dead rows and index entries. Runners write the
-- limits of their settings as they start: run `dev.py compare` with
-- DJANGO_FUTURE_QUEUE_LIMITS='{"limited": 4}' (bench/settings.py reads it), or --step.
SELECT set_config('django_future.folded', 'on', false);
UPDATE django_future_scheduledjob SET lock = 'lock-' || (id % 64), queue = 'limited';
SELECT set_config('django_future.folded', '', false);
INSERT INTO django_future_queuelimit (queue, max_running) VALUES ('limited', 4)
ON CONFLICT (queue) DO UPDATE SET max_running = 4;
ANALYZE django_future_scheduledjob;
