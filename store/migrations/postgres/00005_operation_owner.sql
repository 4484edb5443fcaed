-- +goose Up
-- An operation belongs to the partner of its wallet, and a payment's TSP to
-- that partner too. The service has always written them so; the schema now
-- refuses anything else. One key on (wallet, partner) also replaces the
-- separate keys to wallets and partners: an operation is checked against its
-- wallet's row, which the operation's transaction holds already, instead of
-- also taking a share lock on the partner's row, which every concurrent
-- operation of the partner wanted at once.
ALTER TABLE wallets ADD CONSTRAINT wallets_id_partner UNIQUE (id, partner_id);
ALTER TABLE tsps ADD CONSTRAINT tsps_id_partner UNIQUE (id, partner_id);
-- The migration runs in one transaction, which holds these tables locked
-- until it ends: on a large database, run it in a quiet hour.
ALTER TABLE operations
    ADD CONSTRAINT operations_wallet_partner_fkey FOREIGN KEY (wallet_id, partner_id)
        REFERENCES wallets (id, partner_id),
    ADD CONSTRAINT operations_tsp_partner_fkey FOREIGN KEY (tsp_id, partner_id)
        REFERENCES tsps (id, partner_id),
    DROP CONSTRAINT operations_wallet_id_fkey,
    DROP CONSTRAINT operations_partner_id_fkey,
    DROP CONSTRAINT operations_tsp_id_fkey;

-- +goose Down
ALTER TABLE operations
    ADD CONSTRAINT operations_wallet_id_fkey FOREIGN KEY (wallet_id) REFERENCES wallets (id),
    ADD CONSTRAINT operations_partner_id_fkey FOREIGN KEY (partner_id) REFERENCES partners (id),
    ADD CONSTRAINT operations_tsp_id_fkey FOREIGN KEY (tsp_id) REFERENCES tsps (id),
    DROP CONSTRAINT operations_wallet_partner_fkey,
    DROP CONSTRAINT operations_tsp_partner_fkey;
ALTER TABLE tsps DROP CONSTRAINT tsps_id_partner;
ALTER TABLE wallets DROP CONSTRAINT wallets_id_partner;
