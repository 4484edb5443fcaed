-- +goose Up
-- Keys the service generates for itself, shared by every node of the database:
-- payment tokens are signed with one instead of being stored.
CREATE TABLE service_keys (
    name       TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
DROP TABLE payment_tokens;

-- +goose Down
CREATE TABLE payment_tokens (
    token        TEXT PRIMARY KEY,
    wallet_id    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    operation_id TEXT
);
DROP TABLE service_keys;
