// Command deps installs every Debian package the test suite needs (quietly, idempotently),
// from the machine's own apt configuration. `go tool task test` runs it first.
package main

import (
	"fmt"
	"os"

	"github.com/clusterducks/clusterducks/test/harness/pkgs"
)

func main() {
	if err := pkgs.Install(pkgs.Test...); err != nil {
		fmt.Fprintln(os.Stderr, "test dependencies:", err)
		os.Exit(1)
	}
}
