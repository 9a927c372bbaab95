-- The composite types that the fold's transition functions (fold.sql) return.
--
-- Each is a type of its own rather than the table's row type, so that a column
-- added to the job table changes nothing here. A type cannot be replaced as a
-- function can (CREATE TYPE has no OR REPLACE): this is the one live file that
-- cannot run again over its previous version, and a migration that changes a
-- type writes its ALTER TYPE itself.

-- The columns of a job's row that its events change once it is scheduled: what
-- "started" and "completed" return.
CREATE TYPE django_future_progress AS (
    status varchar(20),
    time_slot_start timestamptz,
    execution_start timestamptz,
    execution_end timestamptz,
    runner varchar(255),
    runner_process_id bigint,
    attempts integer,
    error text,
    return_value text,
    last_seq integer,
    last_hash varchar(64)
);

-- The columns of a job's first row, all but its id: what "scheduled" sets.
-- queue and priority come after the rest: migration 0004 added them (ALTER TYPE
-- ... ADD ATTRIBUTE appends), and the attributes' order is the type's; then
-- unique_key and unique_while, which migration 0006 added, and lock (0008).
CREATE TYPE django_future_created AS (
    callable_name varchar(255),
    content_type_id integer,
    object_id varchar(255),
    args jsonb,
    kwargs jsonb,
    time_slot_start timestamptz,
    time_slot_end timestamptz,
    atomic boolean,
    max_attempts integer,
    retry_delay interval,
    retry_max_delay interval,
    attempts integer,
    status varchar(20),
    created_at timestamptz,
    last_seq integer,
    last_hash varchar(64),
    queue varchar(100),
    priority integer,
    unique_key varchar(255),
    unique_while varchar(10),
    lock varchar(100)
);
