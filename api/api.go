// Package api holds the OpenAPI description of the partner protocol and a validator
// that checks HTTP answers against it.
package api

import _ "embed"

//go:embed openapi.yaml
var spec []byte

// Spec returns the OpenAPI document (YAML) as served at /api/wallet/v1/openapi.yaml.
// The caller must not modify the returned slice; it is shared.
func Spec() []byte { return spec }
