-- Measurement only: the control for before_queues.sql. The claimable index made again
-- as migration 0004 makes it, by CREATE INDEX over the loaded jobs as that variant
-- makes its own, so that the two differ only in the index's order and the claim.
DROP INDEX django_future_claimable;
CREATE INDEX django_future_claimable
    ON django_future_scheduledjob (priority DESC, time_slot_start, id)
    WHERE status = 'scheduled';
ANALYZE django_future_scheduledjob;
