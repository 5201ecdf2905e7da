// Command deps installs every Debian package the test suite needs (quietly, idempotently),
// from the machine's own apt configuration. `go tool task test` runs it first.
package main

import (
	"fmt"
	"os"

	"github.com/clusterducks/clusterducks/test/harness"
)

func main() {
	if err := harness.InstallPackages(harness.TestPackages...); err != nil {
		fmt.Fprintln(os.Stderr, "test dependencies:", err)
		os.Exit(1)
	}
}
