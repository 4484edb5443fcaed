package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/auth"
)

// AuthStore implements auth.Store on the database.
func (db *DB) AuthStore() auth.Store { return authStore{db} }

type authStore struct{ db *DB }

func authNotFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return auth.ErrNotFound
	}
	return err
}

func (s authStore) InsertPartner(ctx context.Context, p auth.Partner, c auth.Client) error {
	return s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO partners (id, name, status, webhook_url, webhook_secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			p.ID, p.Name, string(p.Status), p.WebhookURL, p.WebhookSecret, micros(p.CreatedAt)); err != nil {
			return err
		}
		return insertClient(ctx, tx, c)
	})
}

func (s authStore) InsertClient(ctx context.Context, c auth.Client) error {
	return s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM partners WHERE id = $1`, c.PartnerID).Scan(&one)
		if err != nil {
			return authNotFound(err)
		}
		return insertClient(ctx, tx, c)
	})
}

func insertClient(ctx context.Context, tx *sql.Tx, c auth.Client) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO oauth_clients (id, partner_id, secret_hash, status, created_at) VALUES ($1, $2, $3, $4, $5)`,
		c.ID, c.PartnerID, c.SecretHash, string(c.Status), micros(c.CreatedAt))
	return err
}

const partnerColumns = `p.id, p.name, p.status, p.webhook_url, p.webhook_secret, p.created_at`

func scanPartner(dest []any, p *auth.Partner, created *int64) []any {
	return append(dest, &p.ID, &p.Name, &p.Status, &p.WebhookURL, &p.WebhookSecret, created)
}

func (s authStore) Partner(ctx context.Context, id uuid.UUID) (auth.Partner, error) {
	var (
		p       auth.Partner
		created int64
	)
	err := s.db.row(ctx, `SELECT `+partnerColumns+` FROM partners p WHERE p.id = $1`, id).
		Scan(scanPartner(nil, &p, &created)...)
	p.CreatedAt = fromMicros(created)
	return p, authNotFound(err)
}

func (s authStore) HasPartners(ctx context.Context) (bool, error) {
	var one int
	err := s.db.row(ctx, `SELECT 1 FROM partners LIMIT 1`).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s authStore) SetPartnerStatus(ctx context.Context, id uuid.UUID, st auth.Status) error {
	res, err := s.db.exec(ctx, `UPDATE partners SET status = $1 WHERE id = $2`, string(st), id)
	return authAffected(res, err)
}

func (s authStore) SetClientStatus(ctx context.Context, clientID string, st auth.Status) error {
	res, err := s.db.exec(ctx, `UPDATE oauth_clients SET status = $1 WHERE id = $2`, string(st), clientID)
	return authAffected(res, err)
}

func authAffected(res sql.Result, err error) error {
	err = mustAffect(res, err)
	if isNotFound(err) {
		return auth.ErrNotFound
	}
	return err
}

func (s authStore) ClientWithPartner(ctx context.Context, clientID string) (auth.Client, auth.Partner, error) {
	var (
		c                auth.Client
		p                auth.Partner
		cCreated, pCreat int64
	)
	dest := []any{&c.ID, &c.PartnerID, &c.SecretHash, &c.Status, &cCreated}
	err := s.db.row(ctx, `SELECT c.id, c.partner_id, c.secret_hash, c.status, c.created_at, `+
		partnerColumns+` FROM oauth_clients c JOIN partners p ON p.id = c.partner_id WHERE c.id = $1`, clientID).
		Scan(scanPartner(dest, &p, &pCreat)...)
	c.CreatedAt, p.CreatedAt = fromMicros(cCreated), fromMicros(pCreat)
	return c, p, authNotFound(err)
}

func insertTokens(ctx context.Context, q querier, tokens []auth.Token) error {
	for _, t := range tokens {
		if _, err := q.ExecContext(ctx, `INSERT INTO oauth_tokens
			(hash, kind, client_id, partner_id, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			t.Hash, string(t.Kind), t.ClientID, t.PartnerID, t.FamilyID, micros(t.CreatedAt), micros(t.ExpiresAt)); err != nil {
			return err
		}
	}
	return nil
}

func (s authStore) InsertTokens(ctx context.Context, tokens ...auth.Token) error {
	return s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error { return insertTokens(ctx, tx, tokens) })
}

func (s authStore) Grant(ctx context.Context, hash []byte) (auth.Grant, error) {
	if s.db.grants != nil {
		g, ok, err := s.db.grants.get(ctx, string(hash))
		if err == nil && !ok {
			err = auth.ErrNotFound
		}
		return g, err
	}
	var g grantRow
	if err := s.db.row(ctx, grantQuery+` WHERE t.hash = $1`, hash).Scan(g.dest()...); err != nil {
		return auth.Grant{}, authNotFound(err)
	}
	return g.grant(), nil
}

// grantQuery reads tokens with their client's and partner's status.
const grantQuery = `SELECT t.hash, t.kind, t.client_id, t.partner_id, t.family_id,
		t.created_at, t.expires_at, t.used_at, t.revoked_at,
		(SELECT c.status FROM oauth_clients c WHERE c.id = t.client_id),
		(SELECT p.status FROM partners p WHERE p.id = t.partner_id)
		FROM oauth_tokens t`

// grantRow is a row of grantQuery while it is scanned.
type grantRow struct {
	auth.Grant
	created, expires int64
	used, revoked    sql.NullInt64
}

func (g *grantRow) dest() []any {
	return []any{&g.Hash, &g.Kind, &g.ClientID, &g.PartnerID, &g.FamilyID,
		&g.created, &g.expires, &g.used, &g.revoked, &g.ClientStatus, &g.PartnerStatus}
}

func (g *grantRow) grant() auth.Grant {
	out := g.Grant
	out.CreatedAt, out.ExpiresAt = fromMicros(g.created), fromMicros(g.expires)
	out.UsedAt, out.RevokedAt = fromNullMicros(g.used), fromNullMicros(g.revoked)
	return out
}

// fetchGrants reads many tokens' grants in one statement (the grants batcher,
// PostgreSQL), on the batcher's own connection: outside the gate.
func (db *DB) fetchGrants(ctx context.Context, hashes []string) (map[string]auth.Grant, error) {
	arg := make([][]byte, len(hashes))
	for i, h := range hashes {
		arg[i] = []byte(h)
	}
	out := make(map[string]auth.Grant, len(hashes))
	err := db.fetch(ctx, func(r scanner) error {
		var g grantRow
		if err := r.Scan(g.dest()...); err != nil {
			return err
		}
		out[string(g.Hash)] = g.grant()
		return nil
	}, grantsByHash(), arg)
	return out, err
}

// grantsByHash is fetchGrants' statement.
func grantsByHash() string { return eachKey("bytea", grantQuery+` WHERE t.hash = k.key`) }

func (s authStore) Rotate(ctx context.Context, refreshHash []byte, usedAt time.Time, next ...auth.Token) error {
	return s.db.inTx(ctx, s.db.write, nil, func(ctx context.Context, tx *sql.Tx) error {
		// The guard makes the exchange single-use even when two requests race:
		// the loser's UPDATE sees used_at already set and changes nothing.
		res, err := tx.ExecContext(ctx, `UPDATE oauth_tokens SET used_at = $1
			WHERE hash = $2 AND kind = 'refresh' AND used_at IS NULL AND revoked_at IS NULL`,
			micros(usedAt), refreshHash)
		if err := mustAffect(res, err); err != nil {
			if !isNotFound(err) {
				return err
			}
			var used sql.NullInt64
			err := tx.QueryRowContext(ctx, `SELECT used_at FROM oauth_tokens WHERE hash = $1`, refreshHash).Scan(&used)
			switch {
			case err != nil:
				return authNotFound(err)
			case used.Valid:
				return auth.ErrAlreadyUsed
			}
			return auth.ErrNotFound
		}
		return insertTokens(ctx, tx, next)
	})
}

// RevokeFamily revokes every token of a family, those a rotation running at
// the same moment adds included. On PostgreSQL one UPDATE is not enough: at
// READ COMMITTED it waits for the rotation holding the exchanged token's row,
// then revokes that row but never sees the two tokens the rotation inserted
// beside it, and a thief's fresh pair would live on. So the family's rows are
// locked first, which waits such a rotation out, and the UPDATE, a statement
// of its own, sees what it committed. A rotation that comes later finds its
// token revoked. (SQLite's writer runs one transaction at a time.)
func (s authStore) RevokeFamily(ctx context.Context, familyID uuid.UUID, at time.Time) error {
	var opts *sql.TxOptions
	lock := s.db.eng.forUpdate
	if lock != "" {
		// The argument above holds at READ COMMITTED, whatever the server's default.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return s.db.inTx(ctx, s.db.write, opts, func(ctx context.Context, tx *sql.Tx) error {
		if lock != "" {
			// In one order, so that two revocations of a family queue.
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM oauth_tokens WHERE family_id = $1 AND revoked_at IS NULL
				ORDER BY hash`+lock, familyID); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx,
			`UPDATE oauth_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL`, micros(at), familyID)
		return err
	})
}

func (s authStore) RevokeToken(ctx context.Context, hash []byte, at time.Time) error {
	_, err := s.db.exec(ctx,
		`UPDATE oauth_tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL`, micros(at), hash)
	return err
}

// PurgeTokens deletes tokens that expired before cutoff (background
// housekeeping): every client_credentials grant and refresh adds two rows,
// and past its expiry a token is refused whether its row is there or not (a
// used refresh token's reuse is then no longer detected, nor needs to be).
// It deletes in batches, so that a first purge of a long-lived database does
// not hold SQLite's one writer, and the money waiting on it, for long.
func (db *DB) PurgeTokens(ctx context.Context, cutoff time.Time) (int64, error) {
	const batch = 1000
	var total int64
	for {
		res, err := db.exec(ctx, `DELETE FROM oauth_tokens WHERE hash IN
			(SELECT hash FROM oauth_tokens WHERE expires_at < $1 LIMIT $2)`, micros(cutoff), batch)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}
