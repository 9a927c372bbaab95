-- Measurement only: the claim as it was before queues and priorities (migration
-- 0003), on this schema. The due selection takes the queue parameters and ignores
-- them, orders by time_slot_start, id, and the claimable index is the old one
-- (time_slot_start, id). What `dev.py compare` measures against it is what ordering
-- by priority and filtering by queue cost (docs/scheduling.md, "Queues and
-- priorities"). The runners' two extra parameters are sent in both.
DROP INDEX django_future_claimable;
CREATE INDEX django_future_claimable ON django_future_scheduledjob (time_slot_start, id)
    WHERE status = 'scheduled';
CREATE OR REPLACE FUNCTION django_future_due(
    due_at timestamptz, cutoff timestamptz, how_many integer, queues text[],
    exclude_queues text[]
) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $due$
    SELECT j.id
    FROM django_future_scheduledjob j
    WHERE j.status = 'scheduled'
      AND j.time_slot_start <= due_at
      AND (j.time_slot_end IS NULL OR j.time_slot_end >= cutoff)
    ORDER BY j.time_slot_start, j.id
    LIMIT how_many
    FOR UPDATE SKIP LOCKED
$due$;
ANALYZE django_future_scheduledjob;
