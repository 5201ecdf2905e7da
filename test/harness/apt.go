// Package harness starts the real services the integration tests talk to
// (PostgreSQL, Temporal, packages from Debian) and cleans them up.
package harness

import (
	"testing"

	"github.com/clusterducks/clusterducks/test/harness/pkgs"
)

// TestPackages are the Debian packages the whole test suite uses.
var TestPackages = pkgs.Test

// InstallPackages installs the missing Debian packages (see pkgs.Install).
func InstallPackages(names ...string) error { return pkgs.Install(names...) }

// RequirePackages installs names or fails the test: a missing dependency is a failure, never a skip.
func RequirePackages(t testing.TB, names ...string) {
	t.Helper()
	pkgs.Require(t, names...)
}
