// Package browser holds end-to-end tests that drive walletd's own web pages
// (the SBP sandbox bank page and the API reference at /docs) in headless
// Chromium. The tests skip when no Chromium is installed, unless
// WALLET_BROWSER_TESTS=1 makes a missing browser a failure; WALLET_CHROMIUM
// names the browser binary, and WALLET_BROWSER_SCREENSHOTS names a directory
// to save screenshots of the pages in.
package browser
