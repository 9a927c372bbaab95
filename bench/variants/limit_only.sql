-- Measurement only: as locks_in_use.sql, but without locks: every loaded job is in the
-- queue "limited", limited to 4 at once, and takes one of its slots (what a limit alone
-- costs a claim). Run `dev.py compare` with DJANGO_FUTURE_QUEUE_LIMITS='{"limited": 4}',
-- and compare it with locks_none.sql.
SELECT set_config('django_future.folded', 'on', false);
UPDATE django_future_scheduledjob SET lock = NULL, queue = 'limited';
SELECT set_config('django_future.folded', '', false);
INSERT INTO django_future_queuelimit (queue, max_running) VALUES ('limited', 4)
ON CONFLICT (queue) DO UPDATE SET max_running = 4;
ANALYZE django_future_scheduledjob;
