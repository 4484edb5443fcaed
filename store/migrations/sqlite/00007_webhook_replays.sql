-- +goose Up
-- When the operator last asked for an event again: its retry window starts
-- afresh then, so a partner that was down for days gets its events retried for
-- a day, not once.
ALTER TABLE webhook_events ADD COLUMN replayed_at BIGINT;

-- +goose Down
ALTER TABLE webhook_events DROP COLUMN replayed_at;
