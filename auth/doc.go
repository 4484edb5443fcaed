// Package auth is walletd's OAuth 2.0 authorisation server: partners and their
// clients, the client_credentials grant (with the protocol's partner_id), refresh
// token rotation with reuse detection (RFC 9700), revocation (RFC 7009) and the
// verification of access tokens on every API call.
//
// Secrets and tokens are 256-bit random values; only their SHA-256 hashes are
// stored, and comparisons run in constant time. A slow password hash would add
// nothing to values that cannot be guessed.
package auth
