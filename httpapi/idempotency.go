package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/idempotency"
	"github.com/perspektiva/walletd/wallet"
)

const (
	// idempotencyLease is how long a running request holds its key; a retry
	// after a crash takes the key over then. Taking over a request that is in
	// fact still running is safe: operations carry the key too, so the domain
	// answers with the operation the first request made.
	idempotencyLease = 10 * time.Second
	// idempotencyWait bounds how long a duplicate waits for the first request.
	idempotencyWait = 10 * time.Second
)

// idempotencyKey returns the request's Idempotency-Key header (validated by idempotent).
func idempotencyKey(r *http.Request) string { return r.Header.Get("Idempotency-Key") }

func validKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestHash identifies "the same request": method, path and body, with JSON
// whitespace ignored so a re-encoded body still matches, and the path as the
// router reads it: its UUIDs in either case, the withdrawal path's two
// spellings as one. (The routes' own words are lower case: a path that
// differs from them in case never gets here.)
func requestHash(r *http.Request, body []byte) []byte {
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil {
		body = compact.Bytes()
	}
	path := strings.ToLower(r.URL.Path)
	if rest, ok := strings.CutSuffix(path, "/withdrawal"); ok {
		path = rest + "/wifhdrawal"
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + path + "\n"))
	h.Write(body)
	return h.Sum(nil)
}

// bufferedWriter captures an answer so it can be stored before it is sent.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// idempotent makes a POST safe to repeat under an Idempotency-Key: the first
// final answer is stored for 24 hours and replayed to the same request; another
// request under the key is refused with 409.
func (s *Server) idempotent(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := idempotencyKey(r)
		if key == "" && len(r.Header.Values("Idempotency-Key")) == 0 {
			return h(w, r)
		}
		if !validKey(key) {
			return wallet.Invalid("Idempotency-Key", "от 1 до 255 печатных символов ASCII")
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return bodyError(err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		partner := principal(r).PartnerID
		hash := requestHash(r, body)

		rec, claimedAt, err := s.waitClaim(r.Context(), partner, key, hash)
		if err != nil {
			return err
		}
		if claimedAt.IsZero() {
			if !bytes.Equal(rec.Hash, hash) {
				return wallet.Fail(wallet.CodeIdempotencyReused)
			}
			jsonHeaders(w.Header())
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(rec.Status)
			_, _ = w.Write(rec.Body)
			return nil
		}

		buf := &bufferedWriter{header: w.Header()}
		if err := h(buf, r); err != nil {
			s.writeError(buf, r, err)
		}
		// Only final answers are kept; after a 5xx the partner may simply retry.
		ctx := context.WithoutCancel(r.Context())
		if buf.status < 500 {
			err = s.cfg.Idempotency.Finish(ctx, partner, key, claimedAt, buf.status, buf.body.Bytes())
		} else {
			err = s.cfg.Idempotency.Release(ctx, partner, key, claimedAt)
		}
		switch {
		case errors.Is(err, idempotency.ErrClaimLost):
			// The request outlived its lease and a retry took the key over (the
			// retry's answer is the one kept), or housekeeping deleted the claim:
			// not a failure to store, which the case below reports.
			s.log.WarnContext(ctx, "idempotency claim no longer held")
		case err != nil:
			s.log.WarnContext(ctx, "idempotency record", "error", err.Error())
		}
		w.WriteHeader(buf.status)
		_, _ = w.Write(buf.body.Bytes())
		return nil
	}
}

// waitClaim claims the key, or waits while a concurrent request with it runs.
// claimedAt is when this request claimed the key (Finish and Release name the
// claim by it), zero when the key was held and rec is its record.
func (s *Server) waitClaim(ctx context.Context, partner uuid.UUID, key string, hash []byte) (rec idempotency.Record, claimedAt time.Time, err error) {
	deadline := time.Now().Add(idempotencyWait)
	for {
		now := time.Now()
		rec, claimed, err := s.cfg.Idempotency.Begin(ctx, partner, key, hash, now, idempotencyLease, idempotency.TTL)
		switch {
		case err != nil:
			return rec, time.Time{}, err
		case claimed:
			return rec, now, nil
		case rec.Status != 0 || !bytes.Equal(rec.Hash, hash):
			return rec, time.Time{}, nil
		}
		if time.Now().After(deadline) {
			return rec, time.Time{}, errStillRunning
		}
		select {
		case <-ctx.Done():
			return rec, time.Time{}, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// errStillRunning answers a duplicate whose first request outlived the wait:
// 503 with Retry-After, which every client retries.
var errStillRunning = wallet.Fail(wallet.CodeUnavailable)
