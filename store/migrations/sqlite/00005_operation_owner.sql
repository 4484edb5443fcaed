-- +goose Up
-- An operation belongs to the partner of its wallet, and a payment's TSP to
-- that partner too. The service has always written them so; the schema now
-- refuses anything else. PostgreSQL says it with keys on (id, partner); SQLite
-- cannot add a key to a table without rebuilding it, so triggers say it here.

-- +goose StatementBegin
CREATE TRIGGER operations_owner_insert BEFORE INSERT ON operations
WHEN NEW.partner_id IS NOT (SELECT partner_id FROM wallets WHERE id = NEW.wallet_id)
    OR (NEW.tsp_id IS NOT NULL AND NEW.partner_id IS NOT (SELECT partner_id FROM tsps WHERE id = NEW.tsp_id))
BEGIN
    SELECT RAISE(ABORT, 'operation of another partner''s wallet or TSP');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER operations_owner_update BEFORE UPDATE OF wallet_id, partner_id, tsp_id ON operations
WHEN NEW.partner_id IS NOT (SELECT partner_id FROM wallets WHERE id = NEW.wallet_id)
    OR (NEW.tsp_id IS NOT NULL AND NEW.partner_id IS NOT (SELECT partner_id FROM tsps WHERE id = NEW.tsp_id))
BEGIN
    SELECT RAISE(ABORT, 'operation of another partner''s wallet or TSP');
END;
-- +goose StatementEnd

-- A wallet or TSP with operations keeps its partner (on PostgreSQL the keys
-- above refuse the change).
-- +goose StatementBegin
CREATE TRIGGER wallets_owner_update BEFORE UPDATE OF partner_id ON wallets
WHEN NEW.partner_id IS NOT OLD.partner_id AND EXISTS (SELECT 1 FROM operations WHERE wallet_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'wallet with operations changes partner');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER tsps_owner_update BEFORE UPDATE OF partner_id ON tsps
WHEN NEW.partner_id IS NOT OLD.partner_id AND EXISTS (SELECT 1 FROM operations WHERE tsp_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'TSP with operations changes partner');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER tsps_owner_update;
DROP TRIGGER wallets_owner_update;
DROP TRIGGER operations_owner_update;
DROP TRIGGER operations_owner_insert;
