-- Measurement only, never for use: this copy's sessions commit without waiting for
-- the WAL to reach the disk (synchronous_commit = off). A crash of the server could
-- then lose the last claims and completions its runners were told had committed,
-- and a job would run again with no record of its first start. What
-- `dev.py compare` gains on this variant is what waiting for the disk at every
-- commit costs our runners on this machine (see docs/benchmarks.md, "The durable
-- commit").
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database());
END
$$;
