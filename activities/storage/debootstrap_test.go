package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
)

// TestAptMirror: the archive comes from the server's apt sources in apt's order, one-line
// and deb822, skipping pockets, deb-src, disabled stanzas and files apt ignores.
func TestAptMirror(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"debian 12 deb822", map[string]string{
			"sources.list.d/debian.sources": "Types: deb\n# a comment\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
				"Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n",
		}, "http://mirror.example/debian"},
		{"one-line, options, pockets first", map[string]string{
			"sources.list": "# deb http://commented.example/debian bookworm main\ndeb-src http://src.example/debian bookworm main\n" +
				"deb http://security.debian.org/debian-security bookworm-security main\ndeb http://security.debian.org bookworm/updates main\n" +
				"deb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian bookworm main contrib # trailing\n",
		}, "http://ftp.example/debian"},
		{"sources.list before sources.list.d", map[string]string{
			"sources.list":               "deb http://first.example/debian trixie main\n",
			"sources.list.d/a.sources":   "Types: deb\nURIs: http://second.example/debian\nSuites: trixie\n",
			"sources.list.d/0.list.save": "deb http://ignored.example/debian trixie main\n",
		}, "http://first.example/debian"},
		{"disabled stanza and disabled files", map[string]string{
			"sources.list.d/a.sources":               "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n",
			"sources.list.d/b.list.disabled-by-farm": "deb http://farm.example/debian bookworm main\n",
			"sources.list.d/c.list":                  "deb http://on.example/ubuntu noble main\n",
		}, "http://on.example/ubuntu"},
		{"none", map[string]string{"sources.list.d/a.sources": "Types: deb\nURIs: http://s.example\nSuites: bookworm-security\n"}, ""},
	} {
		dir := t.TempDir()
		for name, body := range c.files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := AptMirror(dir)
		if c.want == "" {
			if !errors.Is(err, activities.ErrNoAptSource) {
				t.Errorf("%s: %q %v, want ErrNoAptSource", c.name, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
}

func TestDebootstrapCommand(t *testing.T) {
	got := debootstrapArgs("bookworm", "/tank/iscsi/ctemplates/4", "http://deb.debian.org/debian")
	want := []string{"debootstrap", "--variant=minbase", "--include=systemd-sysv", "--components=main", "bookworm", "/tank/iscsi/ctemplates/4", "http://deb.debian.org/debian"}
	if !slices.Equal(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	for s, ok := range map[string]bool{"bookworm": true, "noble": true, "sid": true, "bullseye-lts": true, "": false, "Bookworm": false, "../x": false, "a b": false, "-x": false, strings.Repeat("a", 41): false} {
		if err := CheckSuite(s); (err == nil) != ok || (err != nil && !errors.Is(err, activities.ErrInvalidSuite)) {
			t.Errorf("CheckSuite(%q) = %v, want ok %v", s, err, ok)
		}
	}
	// A failed run names its last lines; a good one is quiet.
	err := runDebootstrap(context.Background(), []string{"sh", "-c", "echo I: Retrieving InRelease; echo E: Failed getting release file >&2; exit 1"})
	if err == nil || !strings.Contains(err.Error(), "I: Retrieving InRelease; E: Failed getting release file") {
		t.Errorf("failed run: %v", err)
	}
	if err := runDebootstrap(context.Background(), []string{"true"}); err != nil {
		t.Errorf("good run: %v", err)
	}
}

func TestNeedCommand(t *testing.T) {
	if err := needCommand("sh", "dash"); err != nil {
		t.Errorf("sh: %v", err)
	}
	err := needCommand("/nonexistent/debootstrap", "debootstrap")
	if !errors.Is(err, activities.ErrMissingCommand) || !strings.Contains(err.Error(), "apt-get install debootstrap") {
		t.Errorf("a missing command: %v", err)
	}
	if !activities.IsType(activities.Wrap(err), activities.TypeMissingCommand) {
		t.Errorf("not typed %s: %v", activities.TypeMissingCommand, activities.Wrap(err))
	}
}
