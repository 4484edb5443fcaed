// Package dbloss holds the database-loss test: the real walletd binary on
// PostgreSQL under a load of payments and reads through the Go SDK, while
// every server backend walletd holds is terminated (pg_terminate_backend),
// several times, about a second apart. Walletd itself keeps running.
//
// What a partner saw must hold up: every answer, retries included, is a
// success or 503 UNAVAILABLE with the protocol's error body, never a 500 and
// never SQL or Go internals; every payment answered as made exists exactly
// once, a payment repeated under its Idempotency-Key was not applied twice,
// the balances add up and the books pass `walletd audit`; and walletd
// recovers by itself: shortly after the last termination /readyz answers 200
// and new payments succeed.
//
// It runs when WALLET_TEST_POSTGRES is set and skips otherwise.
package dbloss
