// Package client is the Go SDK of the VsePlatezhi 3.0 e-wallet partner API
// (walletd, /api/wallet/v1): wallets, top-ups through SBP, payments to TSPs,
// refunds, withdrawals, limits, reports and signed notifications.
//
// # Usage
//
// Create one Client per partner OAuth client and share it; it is safe for
// concurrent use:
//
//	c, err := client.New("http://localhost:8080", client.Credentials{
//		PartnerID:    partnerID, // uuid.UUID
//		ClientID:     "wc_…",
//		ClientSecret: "wcs_…",
//	})
//	w, err := c.Register(ctx, "9001234567", client.Personalized)
//	r, err := c.Refill(ctx, w.WalletID, 1500_00) // money.Amount, in kopecks
//	// the client opens r.Payload in a bank app; in the sandbox:
//	_, err = c.SandboxConfirm(ctx, r.Payload)
//	info, err := c.Info(ctx, w.WalletID) // info.Balance == 1500_00
//
// There is one method per protocol operation, each taking a context first.
// Identifiers are uuid.UUID, money is money.Amount (an exact count of
// kopecks, written as "1500.00"; floating point never touches it), times are
// time.Time (the protocol writes them as "YYYY-MM-DD HH:MM:SS" in Moscow time;
// ReportQuery bounds are sent that way, to the second).
//
// # Authorisation
//
// The client gets its tokens itself: client_credentials with partner_id and
// HTTP Basic client authentication, then the refresh_token grant a little
// before the access token expires (the service rotates the refresh token on
// every exchange). When a refresh is refused with invalid_grant (expired,
// revoked or already exchanged), a new pair is requested with the client
// credentials, as the protocol asks. When an API call is answered 401, the
// access token is dropped and the call is made once more with a new one.
// Concurrent callers share one token request, so a refresh token is never
// exchanged twice. Token failures are *OAuthError (for example invalid_client
// for wrong credentials).
//
// The token logic is written out here rather than taken from
// golang.org/x/oauth2: the protocol's grant needs partner_id, its refresh
// tokens are single-use with a fall-back to client credentials on
// invalid_grant, and a 401 must drop the cached token. None of that maps onto
// oauth2.TokenSource without wrapping it as much code again, and the SDK keeps
// to one retry policy and one error model for every request, token requests
// included. The SDK depends only on github.com/google/uuid and the service's
// money package.
//
// # Retries and idempotency
//
// Every POST carries an Idempotency-Key header: a random UUID v4 per call by
// default (WithIdempotencyKeys changes the generator, and
// ContextWithIdempotencyKey sets the key of one call, for example one stored
// with the intended operation so a process restart can repeat it). Retries of
// a call reuse its key, so the service answers the first result again and
// never moves money twice.
//
// A request is retried on a network error and on 502, 503, 504 and 429, up to
// WithRetries times (default 3), with exponential backoff and jitter
// (WithBackoff, default 200 ms base, at most 10 s per pause) and at least the
// Retry-After the service asks for (a Retry-After over a minute ends the
// call instead). Other answers, every other 4xx and 500 included, are
// returned at once. A pause that would outlive the context's deadline is not
// started: the call returns the last answer instead.
//
// # Errors
//
// A refusal of the API is an *Error carrying the HTTP status, the protocol's
// stable Code (the Code… constants), the Russian Message, FieldErrors (field
// → problem, dotted paths for nested fields), Details for LIMIT_EXCEEDED and
// INSUFFICIENT_FUNDS (which limit, what is still available) and the
// service's RequestID:
//
//	_, err := c.Pay(ctx, req)
//	if client.IsCode(err, client.CodeInsufficientFunds) {
//		var e *client.Error
//		errors.As(err, &e)
//		fmt.Println("available:", e.Details.Available)
//	}
//
// Network failures (after the retries) wrap the underlying error, and context
// cancellation wraps context.Canceled or context.DeadlineExceeded.
//
// # Webhooks
//
// The service POSTs notifications (refill.succeeded, withdrawal.failed, …) to
// the partner's webhook URL, signed with the partner's webhook secret in the
// X-Wallet-Signature header. WebhookHandler is a ready http.Handler: it
// verifies the signature and the timestamp, decodes the WebhookEvent and
// calls your function, answering 2xx only when it succeeds so that the
// service retries otherwise:
//
//	http.Handle("/walletd/events", client.WebhookHandler(secret,
//		func(ctx context.Context, ev client.WebhookEvent) error {
//			return store.ApplyOnce(ctx, ev.ID, ev) // deduplicate by event id
//		}))
//
// VerifyWebhook does the same checks for other frameworks; it needs the raw
// body exactly as received. Delivery is at least once and unordered.
//
// # Sandbox
//
// A walletd with the SBP sandbox on answers top-ups with links to its own
// bank-app page. SandboxConfirm and SandboxDecline act on such a link as the
// client's bank would, so scripts and tests can complete a top-up.
package client
