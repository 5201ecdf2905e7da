// Package zfstest puts fake zfs and zpool commands on PATH that answer with outputs
// recorded in a storage lab guest, so the wrapper and the activities are tested against
// real OpenZFS output without a ZFS kernel module.
package zfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Fake writes fake zfs and zpool commands first on PATH for the test. answers maps
// "<command> <subcommand>" to "out:<file>" (printed, exit 0) or "err:<file>" (printed on
// stderr, exit 1), files relative to fixtures; any other call fails with exit 2. Every
// call is appended to the returned log file.
func Fake(t testing.TB, fixtures string, answers map[string]string) (logFile string) {
	t.Helper()
	dir := t.TempDir()
	logFile = filepath.Join(dir, "calls.log")
	abs, err := filepath.Abs(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"zfs", "zpool"} {
		var keys []string
		for k := range answers {
			if strings.HasPrefix(k, cmd+" ") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var b strings.Builder
		fmt.Fprintf(&b, "#!/bin/sh\necho \"%s $*\" >>'%s'\ncase \"$1\" in\n", cmd, logFile)
		for _, k := range keys {
			kind, file, _ := strings.Cut(answers[k], ":")
			redirect := ""
			code := 0
			if kind == "err" {
				redirect, code = " >&2", 1
			}
			fmt.Fprintf(&b, "%s) cat '%s'%s; exit %d;;\n", strings.TrimPrefix(k, cmd+" "), filepath.Join(abs, file), redirect, code)
		}
		b.WriteString("*) echo \"unexpected call: $*\" >&2; exit 2;;\nesac\n")
		if err := os.WriteFile(filepath.Join(dir, cmd), []byte(b.String()), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logFile
}
