-- Replay: a job's history folded from nothing, with the same django_future_fold
-- (fold.sql) as live appends, so that verify, rebuild and time travel cannot
-- disagree with them.

-- A job as its events up to an instant fold to (all of them by default).
CREATE OR REPLACE FUNCTION django_future_replay(job bigint, until timestamptz DEFAULT 'infinity')
RETURNS django_future_scheduledjob
LANGUAGE plpgsql STABLE AS $replay$
DECLARE
    s django_future_scheduledjob;
    e django_future_jobevent;
BEGIN
    FOR e IN SELECT * FROM django_future_jobevent WHERE job_id = job AND at <= until ORDER BY seq LOOP
        s := django_future_fold(s, e);
    END LOOP;
    RETURN s;
END
$replay$;


-- For verify: the replay, or why the events cannot be folded (a gap, a
-- transition that does not follow), without aborting the whole check.
CREATE OR REPLACE FUNCTION django_future_try_replay(
    job bigint, OUT folded django_future_scheduledjob, OUT error text
)
LANGUAGE plpgsql STABLE AS $try$
BEGIN
    folded := django_future_replay(job);
EXCEPTION WHEN OTHERS THEN
    error := SQLERRM;
END
$try$;


-- Time travel: every job as it stood at an instant, folded from the events up
-- to it (jobs deleted by then are absent; jobs not yet scheduled too).
CREATE OR REPLACE FUNCTION django_future_jobs_as_of(instant timestamptz)
RETURNS SETOF django_future_scheduledjob
LANGUAGE plpgsql STABLE AS $as_of$
DECLARE
    s django_future_scheduledjob;
    e django_future_jobevent;
    current_job bigint;
BEGIN
    FOR e IN SELECT * FROM django_future_jobevent WHERE at <= instant ORDER BY job_id, seq LOOP
        IF current_job IS DISTINCT FROM e.job_id THEN
            IF s.id IS NOT NULL THEN
                RETURN NEXT s;
            END IF;
            s := NULL;
            current_job := e.job_id;
        END IF;
        s := django_future_fold(s, e);
    END LOOP;
    IF s.id IS NOT NULL THEN
        RETURN NEXT s;
    END IF;
END
$as_of$;
