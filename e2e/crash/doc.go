// Package crash holds the crash-safety test: the real walletd binary under a
// mixed load through the Go SDK, killed with SIGKILL at random moments and
// started again on the same database, on every storage engine. Afterwards
// every acknowledged operation must exist as acknowledged, nothing may be
// applied twice, the books must pass `walletd audit`, and the background work
// (top-up expiries, payouts) must have resumed and finished.
package crash
