package storage

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"go.temporal.io/sdk/activity"
)

// A ctemplate can be built on its server by debootstrap instead of uploaded: a minimal
// Debian (or derivative) root file system of a suite, fetched from the archive the
// server's own apt sources name (the server can reach it; nothing else is assumed), as
// its next version.

// DefaultAptDir is where the server's apt sources are read from.
const DefaultAptDir = "/etc/apt"

// CheckSuite validates a debootstrap suite name (bookworm, trixie, noble, ...).
func CheckSuite(s string) error {
	if !wire.ValidSuite(s) {
		return fmt.Errorf("suite %q: a release code name of lower-case letters, digits, dots and dashes: %w", s, activities.ErrInvalidSuite)
	}
	return nil
}

// BuildCTemplateInput builds version Version of ctemplate CTemplateID with debootstrap.
type BuildCTemplateInput struct {
	Pool        string
	CTemplateID uint
	Version     int
	Suite       string
}

// BuildCTemplateResult names the version made and the archive it came from.
type BuildCTemplateResult struct {
	Snapshot string
	Mirror   string
}

// BuildProgress is what a build's heartbeats carry: debootstrap's latest line.
type BuildProgress struct {
	Line string
}

// aptSource is one "deb" entry of the apt sources.
type aptSource struct {
	URI    string
	Suites []string
}

// AptMirror is the archive to debootstrap from: the URI of the first "deb" source, in
// apt's order (sources.list, then sources.list.d/*.list and *.sources by name), that
// serves a release itself rather than its -security, -updates or -backports pocket.
func AptMirror(dir string) (string, error) {
	files := []string{filepath.Join(dir, "sources.list")}
	more, _ := filepath.Glob(filepath.Join(dir, "sources.list.d", "*"))
	slices.Sort(more)
	files = append(files, more...)
	for _, f := range files {
		var parse func(string) []aptSource
		switch {
		case strings.HasSuffix(f, ".list"):
			parse = parseAptList
		case strings.HasSuffix(f, ".sources"):
			parse = parseAptSources
		default:
			continue // .disabled, .save, ...: apt ignores them too
		}
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		for _, s := range parse(string(b)) {
			if slices.ContainsFunc(s.Suites, isRelease) {
				return s.URI, nil
			}
		}
	}
	return "", fmt.Errorf("no deb source of a release in %s's apt sources: %w", dir, activities.ErrNoAptSource)
}

// isRelease: a suite that is a release, not one of its pockets.
func isRelease(suite string) bool {
	for _, p := range []string{"-security", "-updates", "-backports", "-proposed"} {
		if strings.HasSuffix(suite, p) {
			return false
		}
	}
	return !strings.Contains(suite, "/") // "bookworm/updates": an old security pocket
}

// parseAptList reads one-line sources: "deb [options] uri suite [component...]".
func parseAptList(text string) []aptSource {
	var out []aptSource
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 {
			out = append(out, aptSource{URI: f[0], Suites: []string{f[1]}})
		}
	}
	return out
}

// parseAptSources reads deb822 sources: stanzas of Types, URIs, Suites (and Enabled).
func parseAptSources(text string) []aptSource {
	var out []aptSource
	for _, stanza := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok && !strings.HasPrefix(k, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !slices.Contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			out = append(out, aptSource{URI: uri, Suites: strings.Fields(fields["suites"])})
		}
	}
	return out
}

// debootstrapArgs is the command that builds a suite into dir from mirror: the minimal
// variant plus systemd-sysv, so that a container without a command can boot its own
// init (systemd-nspawn -b).
func debootstrapArgs(suite, dir, mirror string) []string {
	return []string{"debootstrap", "--variant=minbase", "--include=systemd-sysv", "--components=main", suite, dir, mirror}
}

// BuildCTemplate builds ctemplate version Version with debootstrap into
// <pool>/iscsi/ctemplates/<id> and takes snapshot @v<Version>. Its heartbeats carry
// debootstrap's latest line (BuildProgress). Like an upload it leaves nothing on failure:
// a dataset it created is destroyed, an existing one rolled back to its newest version.
// Safe to repeat: a version that exists already is success.
func (a *Activities) BuildCTemplate(ctx context.Context, in BuildCTemplateInput) (*BuildCTemplateResult, error) {
	if err := CheckSuite(in.Suite); err != nil {
		return nil, activities.Wrap(err)
	}
	if err := needCommand("debootstrap", "debootstrap"); err != nil {
		return nil, activities.Wrap(err)
	}
	ds := CTemplateDataset(in.Pool, in.CTemplateID)
	snap := VersionSnapshot(in.Version)
	res := &BuildCTemplateResult{Snapshot: ds + "@" + snap}
	mirror, err := AptMirror(cmp.Or(a.AptDir, DefaultAptDir))
	if err != nil {
		return nil, activities.Wrap(err)
	}
	res.Mirror = mirror
	r := &RootFS{ZFS: a.ZFS}
	prev, err := r.prepare(ctx, ds, snap)
	if errors.Is(err, activities.ErrExists) {
		return res, nil // a retry after the snapshot was taken
	}
	if err != nil {
		return nil, activities.Wrap(err)
	}
	err = a.alive(ctx, func() error {
		dir, err := a.ZFS.Property(ctx, ds, "mountpoint")
		if err != nil {
			return err
		}
		if err := runDebootstrap(ctx, debootstrapArgs(in.Suite, dir, mirror)); err != nil {
			return err
		}
		_, _, err = a.ZFS.Snapshot(ds, snap)
		return err
	})
	if err != nil {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if uerr := r.undo(uctx, ds, prev); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return nil, err
	}
	return res, nil
}

// needCommand is ErrMissingCommand, saying which Debian package brings it, when name is
// not on the agent's PATH (or, for an absolute name, not there).
func needCommand(name, pkg string) error {
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("%w: %s (apt-get install %s)", activities.ErrMissingCommand, name, pkg)
	}
	return nil
}

// runDebootstrap runs the command, heartbeating each line it prints; a failure names
// its last lines.
func runDebootstrap(ctx context.Context, args []string) error {
	start := time.Now()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	lines := make(chan []string, 1)
	go func() {
		var last []string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			last = append(last, l)
			if len(last) > 10 {
				last = last[1:]
			}
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, BuildProgress{Line: l})
			}
		}
		io.Copy(io.Discard, pr) //nolint:errcheck // a line over the scanner's limit: keep draining
		lines <- last
	}()
	err := cmd.Wait()
	pw.Close()
	last := <-lines
	slog.Info("debootstrap", "args", args, "took", time.Since(start).Round(time.Second), "err", err)
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.Join(last, "; "))
	}
	return nil
}
