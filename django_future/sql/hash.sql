-- The hash chain: each event carries a hash chained to its job's previous event.
--
-- An event changed or removed behind the triggers' back breaks the chain, and
-- `manage.py ledger verify` (the verify_chain query) says where. Writers that
-- append through SQL functions compute the hash themselves, in the same
-- statement; a row that arrives without one (the INSERTs of queries.sql, the
-- ORM, psql) is stamped by the stamp_event trigger declared on JobEvent in
-- models.py, which calls django_future_stamp. The fold trigger
-- (fold_trigger.sql) checks every hash a writer brings, so that a writer can
-- neither forge one nor backdate an event.

-- STABLE, which is what its body is (concat_ws, extract and convert_to are
-- STABLE): its result does not change, but the planner inlines a SQL function
-- only when it is declared no stricter than its body, and the runner's step
-- relies on that inlining (see complete.sql).
CREATE OR REPLACE FUNCTION django_future_event_hash(
    prev text, job_id bigint, seq integer, kind text, at timestamptz, runner text, data jsonb
) RETURNS text
LANGUAGE sql STABLE AS $hash$
    SELECT encode(sha256(convert_to(concat_ws('|',
        coalesce(prev, ''), job_id, seq, kind,
        (extract(epoch FROM at) * 1000000)::bigint,  -- independent of the TimeZone setting
        coalesce(runner, ''), data::text), 'UTF8')), 'hex')
$hash$;


-- The hash of a new event, chained to its job's previous event (which may have
-- been inserted earlier in the same statement: a volatile function sees it).
CREATE OR REPLACE FUNCTION django_future_stamp(e django_future_jobevent)
RETURNS text
LANGUAGE sql VOLATILE AS $stamp$
    SELECT django_future_event_hash(
        (SELECT p.hash FROM django_future_jobevent p
         WHERE p.job_id = e.job_id AND p.seq = e.seq - 1),
        e.job_id, e.seq, e.kind, e.at, e.runner, e.data)
$stamp$;


-- Why an event's stamps are refused: a time that is not its statement's, or
-- else a hash that does not chain to the job's previous event. Always raises.
CREATE OR REPLACE FUNCTION django_future_refuse_stamp(job bigint, seq integer, late boolean)
RETURNS void
LANGUAGE plpgsql AS $refuse$
BEGIN
    IF late THEN
        RAISE EXCEPTION 'django_future: event % of job % is not stamped with the time of its statement: events record when they were written, the database sets it',
            seq, job;
    END IF;
    RAISE EXCEPTION 'django_future: event % of job % has a hash that does not chain to the job''s previous event (leave hash out and the database sets it)',
        seq, job;
END
$refuse$;
