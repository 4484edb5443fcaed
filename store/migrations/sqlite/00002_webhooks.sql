-- +goose Up
-- The webhook outbox: an event is written in the same transaction as the
-- operation outcome that caused it, so no outcome is ever without its event.
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    partner_id   TEXT NOT NULL REFERENCES partners (id),
    type         TEXT NOT NULL,
    wallet_id    TEXT NOT NULL,
    operation_id TEXT,
    created_at   BIGINT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at BIGINT
);
CREATE INDEX webhook_events_partner ON webhook_events (partner_id, created_at DESC);

-- Every delivery attempt, for the operator and the partner's support.
CREATE TABLE webhook_attempts (
    event_id     TEXT NOT NULL REFERENCES webhook_events (id),
    attempt      INTEGER NOT NULL,
    attempted_at BIGINT NOT NULL,
    url          TEXT NOT NULL,
    status_code  INTEGER NOT NULL,
    error        TEXT NOT NULL DEFAULT '',
    duration_us  BIGINT NOT NULL,
    PRIMARY KEY (event_id, attempt)
);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_events;
