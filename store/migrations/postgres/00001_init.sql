-- +goose Up
-- Times are BIGINT microseconds since the Unix epoch (UTC) on both engines, so one
-- set of queries serves both and no time zone setting of a session can shift them.
-- Money is BIGINT kopecks.

CREATE TABLE partners (
    id             UUID PRIMARY KEY,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    webhook_url    TEXT NOT NULL DEFAULT '',
    webhook_secret TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE oauth_clients (
    id          TEXT PRIMARY KEY,
    partner_id  UUID NOT NULL REFERENCES partners (id),
    secret_hash BYTEA NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    created_at  BIGINT NOT NULL
);
CREATE INDEX oauth_clients_partner ON oauth_clients (partner_id);

-- Only SHA-256 hashes of tokens are kept. family_id ties every token descended
-- from one client_credentials grant, for refresh-token reuse detection.
CREATE TABLE oauth_tokens (
    hash       BYTEA PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id  TEXT NOT NULL REFERENCES oauth_clients (id),
    partner_id UUID NOT NULL REFERENCES partners (id),
    family_id  UUID NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family_id);
CREATE INDEX oauth_tokens_expiry ON oauth_tokens (expires_at);

-- Ledger accounts. A wallet's balance is kept here and changed only by guarded
-- updates, so it can refuse a debit; accounts that never refuse (TSPs, system
-- accounts) are credited by postings alone and their balance is the sum of them,
-- so a merchant that receives every payment is not one row everybody waits on.
CREATE TABLE accounts (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('WALLET', 'TSP', 'SYSTEM')),
    code       TEXT UNIQUE,
    balance    BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    CHECK (kind <> 'WALLET' OR balance >= 0)
);

INSERT INTO accounts (id, kind, code, created_at) VALUES
    ('00000000-0000-0000-0000-000000000001', 'SYSTEM', 'SBP_INBOUND', 0),
    ('00000000-0000-0000-0000-000000000002', 'SYSTEM', 'PAYOUTS_IN_TRANSIT', 0),
    ('00000000-0000-0000-0000-000000000003', 'SYSTEM', 'SBP_OUTBOUND', 0);

-- A wallet's id is its account's id.
CREATE TABLE wallets (
    id             UUID PRIMARY KEY REFERENCES accounts (id),
    partner_id     UUID NOT NULL REFERENCES partners (id),
    phone          TEXT NOT NULL,
    number         TEXT NOT NULL UNIQUE,
    identification SMALLINT NOT NULL CHECK (identification BETWEEN 0 AND 2),
    status         TEXT NOT NULL CHECK (status IN ('ACTIVE', 'CLOSED')),
    pending_credit BIGINT NOT NULL DEFAULT 0 CHECK (pending_credit >= 0),
    created_at     BIGINT NOT NULL,
    closed_at      BIGINT
);
-- One active wallet per (partner, phone); a closed one frees the phone.
CREATE UNIQUE INDEX wallets_active_phone ON wallets (partner_id, phone) WHERE status = 'ACTIVE';

-- The partner's own limit settings; NULL means "the system's value".
CREATE TABLE wallet_limits (
    wallet_id        UUID PRIMARY KEY REFERENCES wallets (id),
    balance_limit    BIGINT,
    credit_one_time  BIGINT,
    credit_month     BIGINT,
    credit_enabled   BOOLEAN,
    payment_one_time BIGINT,
    payment_month    BIGINT,
    payment_enabled  BOOLEAN,
    debit_one_time   BIGINT,
    debit_month      BIGINT,
    debit_enabled    BOOLEAN
);

CREATE TABLE tsps (
    id         UUID PRIMARY KEY REFERENCES accounts (id),
    partner_id UUID NOT NULL REFERENCES partners (id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX tsps_partner ON tsps (partner_id);

-- Usage of monthly limits: SUCCESS and PENDING operations per calendar month
-- (yyyymm, Moscow time), written in the same transaction as the operation.
CREATE TABLE month_usage (
    wallet_id      UUID NOT NULL REFERENCES wallets (id),
    month          INTEGER NOT NULL,
    operation_type TEXT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (wallet_id, month, operation_type)
);

CREATE TABLE operations (
    id             UUID PRIMARY KEY,
    wallet_id      UUID NOT NULL REFERENCES wallets (id),
    partner_id     UUID NOT NULL REFERENCES partners (id),
    type           TEXT NOT NULL CHECK (type IN ('CREDIT', 'PAYMENT', 'DEBIT', 'REFUND')),
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILED', 'EXPIRED')),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    refunded       BIGINT NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    tsp_id         UUID REFERENCES tsps (id),
    bank_id        TEXT,
    payment_token  UUID,
    parent_id      UUID REFERENCES operations (id),
    qrc_id         TEXT UNIQUE,
    payload        TEXT,
    -- The partner's Idempotency-Key of the request that created the operation:
    -- a retry after a crash finds the operation instead of making a second one.
    idempotency_key TEXT,
    description    TEXT NOT NULL,
    month          INTEGER NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    finished_at    BIGINT
);
-- The report: newest first, ties by id; with and without a type filter.
CREATE INDEX operations_report ON operations (wallet_id, created_at DESC, id DESC);
CREATE INDEX operations_report_type ON operations (wallet_id, type, created_at DESC, id DESC);
CREATE INDEX operations_pending ON operations (wallet_id) WHERE status = 'PENDING';
CREATE UNIQUE INDEX operations_payment_token ON operations (payment_token) WHERE type = 'PAYMENT';
CREATE UNIQUE INDEX operations_idempotency ON operations (partner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX operations_parent ON operations (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE payment_tokens (
    token        UUID PRIMARY KEY,
    wallet_id    UUID NOT NULL REFERENCES wallets (id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    operation_id UUID REFERENCES operations (id)
);

CREATE TABLE ledger_transactions (
    id           UUID PRIMARY KEY,
    operation_id UUID NOT NULL REFERENCES operations (id),
    kind         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX ledger_transactions_operation ON ledger_transactions (operation_id);

-- Postings are append-only; amount is signed (credit +, debit -) and the
-- postings of one transaction sum to zero.
CREATE TABLE postings (
    tx_id      UUID NOT NULL REFERENCES ledger_transactions (id),
    account_id UUID NOT NULL REFERENCES accounts (id),
    amount     BIGINT NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (tx_id, account_id)
);
CREATE INDEX postings_account ON postings (account_id);

CREATE TABLE idempotency_keys (
    partner_id   UUID NOT NULL REFERENCES partners (id),
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status_code  INTEGER NOT NULL,
    body         BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (partner_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Durable background work (top-up expiry, payouts). A job is claimed by moving
-- run_at forward (a lease), so a crashed worker's job comes back by itself.
CREATE TABLE jobs (
    id          UUID PRIMARY KEY,
    kind        TEXT NOT NULL,
    ref_id      UUID NOT NULL,
    run_at      BIGINT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    done_at     BIGINT,
    UNIQUE (kind, ref_id)
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE done_at IS NULL;

-- +goose Down
DROP TABLE jobs;
DROP TABLE idempotency_keys;
DROP TABLE postings;
DROP TABLE ledger_transactions;
DROP TABLE payment_tokens;
DROP TABLE operations;
DROP TABLE month_usage;
DROP TABLE tsps;
DROP TABLE wallet_limits;
DROP TABLE wallets;
DROP TABLE accounts;
DROP TABLE oauth_tokens;
DROP TABLE oauth_clients;
DROP TABLE partners;
