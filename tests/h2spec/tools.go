//go:build tools

// Package tools pins the version of h2spec the test script installs, and of its
// dependencies (h2spec v2.2.1 predates Go modules, so `go install …@v2.2.1` alone would take
// whatever versions of them are newest).
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"
