-- +goose Up
-- Every claim of a job, and every time it is enqueued again, counts here, and
-- the count never goes down: it names the claim a runner holds, so that a
-- runner whose lease ran out cannot finish the job under a newer claim.
-- attempts, which a job enqueued again starts over, only sets the backoff.
ALTER TABLE jobs ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN claims;
