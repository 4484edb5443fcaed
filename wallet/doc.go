// Package wallet is the e-wallet domain: wallets, their identification levels,
// the limits of Federal Law 161-FZ, and the Service with one method per use case.
//
// It knows nothing of HTTP or SQL. Storage is reached through the Store and Tx
// interfaces; every use case that changes state runs in one Store transaction so
// that its checks and its writes see the same data.
package wallet
