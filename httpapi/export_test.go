package httpapi

// For the tests of package httpapi_test.
const IdempotencyLease = idempotencyLease

var RequestHash = requestHash
