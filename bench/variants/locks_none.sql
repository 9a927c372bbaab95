-- Measurement only: the companion of locks_in_use.sql: every loaded job's row is
-- rewritten as there, but it keeps no lock and its queue has no limit. What
-- `dev.py compare` shows between the two is what locks and limits cost a claim.
SELECT set_config('django_future.folded', 'on', false);
UPDATE django_future_scheduledjob SET lock = NULL, queue = 'unlimited';
SELECT set_config('django_future.folded', '', false);
ANALYZE django_future_scheduledjob;
