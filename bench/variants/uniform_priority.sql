-- Measurement only: the control for priorities_in_use.sql. Every row rewritten as
-- that variant rewrites it (a changed priority and queue: no HOT update), but all at
-- one priority. Never do this to a real database.
SELECT set_config('django_future.folded', 'on', false);
UPDATE django_future_scheduledjob
SET priority = 1,
    queue = CASE WHEN id % 2 = 0 THEN 'emails' ELSE 'reports' END;
SELECT set_config('django_future.folded', '', false);
ANALYZE django_future_scheduledjob;
