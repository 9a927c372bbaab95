-- Measurement only: as locks_in_use.sql, but in a queue without a limit: every loaded
-- job takes one of 64 locks, and nothing else (what a lock alone costs a claim).
-- Compare it with locks_none.sql.
SELECT set_config('django_future.folded', 'on', false);
UPDATE django_future_scheduledjob SET lock = 'lock-' || (id % 64), queue = 'unlimited';
SELECT set_config('django_future.folded', '', false);
ANALYZE django_future_scheduledjob;
