package store

// BatchReads are the batchers' statements (PostgreSQL), by the table whose
// keys they look up.
func BatchReads() map[string]string {
	return map[string]string{"wallets": walletsByID(), "oauth_tokens": grantsByHash()}
}
