package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/webhook"
)

// A receiver that redirects has not received the event: the redirect is not
// followed (a 302 would fetch the target without the body, a 307 would re-send
// the signed body elsewhere), and the 3xx answer is a failed attempt, recorded
// with its status, leaving the event PENDING for a retry.
func TestRedirectIsAFailedAttempt(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		for _, client := range []struct {
			name string
			c    *http.Client
		}{{"default client", nil}, {"caller's client", &http.Client{}}} {
			t.Run(strconv.Itoa(code)+" "+client.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				f := newFixture(t, storetest.Engines()[0], 0)

				var elsewhere atomic.Int32
				other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					elsewhere.Add(1)
					w.WriteHeader(http.StatusOK)
				}))
				t.Cleanup(other.Close)
				redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, other.URL+"/elsewhere", code)
				}))
				t.Cleanup(redirecting.Close)
				if err := f.db.WebhookStore().SetTarget(ctx, f.creds.PartnerID, webhook.Target{URL: redirecting.URL + "/hook", Secret: f.creds.WebhookSecret}); err != nil {
					t.Fatal(err)
				}

				event := f.oneEvent(t, f.svc.DeclineTopUp)

				hooks := webhook.NewDeliverer(f.db.WebhookStore(), webhook.Config{Client: client.c})
				next, err := hooks.Deliver(ctx, event.ID)
				if err != nil {
					t.Fatal(err)
				}
				if next.IsZero() {
					t.Error("a redirected attempt settled the event; want a retry time")
				}
				if n := elsewhere.Load(); n != 0 {
					t.Errorf("the redirect target got %d requests, want none", n)
				}
				recs := ok[[]webhook.Record](t)(f.db.WebhookStore().List(ctx, f.creds.PartnerID, 10))
				if recs[0].Status != webhook.Pending || recs[0].Attempts != 1 {
					t.Errorf("record = %s after %d attempts, want PENDING after 1", recs[0].Status, recs[0].Attempts)
				}
				attempts := ok[[]webhook.Attempt](t)(f.db.WebhookStore().Attempts(ctx, event.ID))
				if len(attempts) != 1 || attempts[0].StatusCode != code {
					t.Errorf("attempts = %+v, want one with status %d", attempts, code)
				}
				if client.c != nil && client.c.CheckRedirect != nil {
					t.Error("the caller's client was changed")
				}
			})
		}
	}
}
