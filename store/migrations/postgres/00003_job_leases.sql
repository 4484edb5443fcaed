-- +goose Up
-- A claim is a lease of its own, apart from when the job is due: a process
-- that starts can tell jobs another (dead) process had claimed from jobs that
-- are simply scheduled later, and on a single node release them at once.
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;

-- +goose Down
ALTER TABLE jobs DROP COLUMN lease_until;
