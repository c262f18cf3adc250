//go:build !unix

package webhooktest

import "testing"

// lock does nothing where flock is missing: run the tests of one package
// at a time there, or npm ci first.
func lock(t testing.TB, path string) (unlock func()) { return func() {} }
