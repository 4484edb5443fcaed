// Package scaleout holds the scale-out test: two walletd processes on one
// PostgreSQL database, with requests spread across both. Money must not be
// spent twice, limits must not be overrun, background work (payouts, top-up
// expiries) must be done exactly once, and the books must pass `walletd audit`.
// It runs when WALLET_TEST_POSTGRES is set and skips otherwise.
package scaleout
