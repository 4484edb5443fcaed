package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/perspektiva/walletd/auth"
	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/store"
	"github.com/perspektiva/walletd/wallet"
)

const (
	fundKopecks    = 50_000_00 // each wallet's first top-up
	identification = 2         // IDENTIFIED: the largest limits (600 000.00)
)

// benchWallet is a wallet opened and funded by the setup.
type benchWallet struct {
	id      string
	partner *partner
}

// fleet is what the run works on.
type fleet struct {
	partners []*partner
	wallets  []benchWallet
	hotTSP   string // with --hot, the one TSP every payment goes to
}

func (f *fleet) tokensIssued() int {
	n := 0
	for _, p := range f.partners {
		n += p.tokens.count()
	}
	return n
}

// setup creates the partners and TSPs in the database, gets their tokens and
// opens and funds the wallets over HTTP. Wallets that failed are left out of the
// fleet; their errors are in the recorder.
func setup(ctx context.Context, cfg config, api *apiClient, db *store.DB, progress io.Writer) (*fleet, *recorder, time.Duration, error) {
	start := time.Now()
	partners, err := createPartners(ctx, cfg, api, db)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, p := range partners {
		if _, err := p.tokens.get(ctx); err != nil {
			return nil, nil, 0, fmt.Errorf("token for partner %s: %w (does walletd at %s use --db %s?)", p.id, err, cfg.url, redact(cfg.dsn))
		}
	}
	rng := rand.New(rand.NewPCG(cfg.seed, 0))
	wallets, rec := openWallets(ctx, cfg, partners, distinctPhones(rng, cfg.wallets), progress)
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, rec, elapsed, err
	}
	if len(wallets) == 0 {
		return nil, rec, elapsed, fmt.Errorf("no wallet could be opened and funded: %s", rec.firstExample())
	}
	fl := &fleet{partners: partners, wallets: wallets}
	if cfg.hot {
		fl.hotTSP = partners[0].tsps[0]
	}
	return fl, rec, elapsed, nil
}

// createPartners registers the partners and their TSPs directly in the
// database, as `walletd partner create` and `walletd tsp create` do.
func createPartners(ctx context.Context, cfg config, api *apiClient, db *store.DB) ([]*partner, error) {
	authSvc := auth.NewService(db.AuthStore(), auth.Config{})
	walletSvc, err := wallet.NewService(db, wallet.Config{})
	if err != nil {
		return nil, err
	}
	stamp := time.Now().Format("2006-01-02 15:04:05")
	partners := make([]*partner, 0, cfg.partners)
	for i := range cfg.partners {
		creds, err := authSvc.CreatePartner(ctx, fmt.Sprintf("walletbench %s #%d", stamp, i+1), "")
		if err != nil {
			return nil, fmt.Errorf("create partner: %w", err)
		}
		p := &partner{id: creds.PartnerID.String(), api: api, tokens: &tokenSource{
			api: api, partnerID: creds.PartnerID.String(), clientID: creds.ClientID, secret: creds.ClientSecret,
		}}
		for j := range cfg.tsps {
			t, err := walletSvc.CreateTSP(ctx, creds.PartnerID, fmt.Sprintf("walletbench TSP %d.%d", i+1, j+1))
			if err != nil {
				return nil, fmt.Errorf("create TSP: %w", err)
			}
			p.tsps = append(p.tsps, t.ID.String())
		}
		partners = append(partners, p)
	}
	return partners, nil
}

// distinctPhones returns n different 10-digit mobile numbers.
func distinctPhones(rng *rand.Rand, n int) []string {
	seen := make(map[string]bool, n)
	phones := make([]string, 0, n)
	for len(phones) < n {
		p := fmt.Sprintf("9%09d", rng.IntN(1_000_000_000))
		if !seen[p] {
			seen[p] = true
			phones = append(phones, p)
		}
	}
	return phones
}

// openWallets registers and funds one wallet per phone, wallet i at partner
// i mod P, with --setup-concurrency workers.
func openWallets(ctx context.Context, cfg config, partners []*partner, phones []string, progress io.Writer) ([]benchWallet, *recorder) {
	opened := make([]benchWallet, len(phones)) // a zero id marks a wallet that failed
	jobs := make(chan int)
	var done atomic.Int64
	stop := every(progress, 2*time.Second, func() string {
		return fmt.Sprintf("setup: %d/%d wallets", done.Load(), len(phones))
	})
	recs := make([]*recorder, cfg.setupConcurrency)
	var wg sync.WaitGroup
	for i := range recs {
		rec := newRecorder()
		recs[i] = rec
		wg.Go(func() {
			for idx := range jobs {
				p := partners[idx%len(partners)]
				if id, ok := openWallet(ctx, p, phones[idx], rec); ok {
					opened[idx] = benchWallet{id: id, partner: p}
				}
				done.Add(1)
			}
		})
	}
feed:
	for idx := range phones {
		select {
		case jobs <- idx:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	stop()

	wallets := make([]benchWallet, 0, len(opened))
	for _, w := range opened {
		if w.id != "" {
			wallets = append(wallets, w)
		}
	}
	return wallets, mergeAll(recs)
}

// openWallet registers an IDENTIFIED wallet and funds it with a confirmed top-up.
func openWallet(ctx context.Context, p *partner, phone string, rec *recorder) (string, bool) {
	var reg struct {
		WalletID string `json:"walletId"`
	}
	r := p.call(ctx, http.MethodPost, "/account/registration", map[string]any{"phone": phone, "identification": identification}, &reg)
	if r.ok() && reg.WalletID == "" {
		r.fail("no walletId")
	}
	if !rec.request("register", r) {
		return "", false
	}
	refill, confirm := topUp(ctx, p, reg.WalletID, fundKopecks)
	if !rec.request("refill", refill) || !rec.request("confirm", confirm) {
		return "", false
	}
	return reg.WalletID, true
}

// topUp asks for a top-up and confirms it as the client's bank would, through
// the SBP sandbox. confirm is empty when the refill failed.
func topUp(ctx context.Context, p *partner, walletID string, kopecks int64) (refill, confirm response) {
	var ans struct {
		Payload string `json:"payload"`
	}
	refill = p.call(ctx, http.MethodPost, "/account/"+walletID+"/refill", map[string]any{"amount": money.Amount(kopecks)}, &ans)
	if !refill.ok() {
		return refill, response{}
	}
	qrc := qrcID(ans.Payload)
	if qrc == "" {
		refill.fail("payload is not a sandbox SBP link")
		return refill, response{}
	}
	var done struct {
		Status string `json:"status"`
	}
	confirm = p.api.do(ctx, http.MethodPost, "/sandbox/sbp/"+qrc+"/confirm", "", nil)
	confirm.decode(&done)
	if confirm.ok() && done.Status != "SUCCESS" {
		confirm.fail("status " + done.Status)
	}
	return refill, confirm
}

// qrcID is the path segment after /sandbox/sbp/ in a top-up payload link.
func qrcID(payload string) string {
	u, err := url.Parse(payload)
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(u.Path, "/sandbox/sbp/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// redact hides the password of a postgres:// URL.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}
