package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	cdmetrics "github.com/clusterducks/clusterducks/activities/metrics"
	agentmetrics "github.com/clusterducks/clusterducks/activities/storage/metrics"
	"github.com/clusterducks/clusterducks/deploy"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/prometheus/client_golang/prometheus"
)

// install.sh is POSIX sh: Debian's sh (dash) parses it and shellcheck finds nothing in
// it as sh; the served copy is the file.
func TestInstallScriptIsPOSIX(t *testing.T) {
	harness.RequirePackages(t, "shellcheck", "dash")
	b, err := os.ReadFile("install.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, deploy.InstallScript) {
		t.Fatal("the embedded install.sh is not deploy/install.sh")
	}
	for _, args := range [][]string{{"dash", "-n", "install.sh"}, {"shellcheck", "-s", "sh", "-S", "info", "install.sh"}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := lines[len(lines)-1]; last != `main "$@"` {
		t.Errorf("the last line is %q, want main \"$@\"", last)
	}
}

// A download cut short runs nothing: every prefix of install.sh either fails to parse or
// only defines functions and variables.
func TestTruncatedInstallScriptRunsNothing(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "server.key")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := deploy.InstallScript
	for cut := 64; cut < len(s)-len("main \"$@\"\n"); cut += 97 {
		p := filepath.Join(dir, "cut.sh")
		if err := os.WriteFile(p, s[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		// In a network namespace of its own, so that nothing could touch the host's links.
		cmd := exec.Command("unshare", "-n", "dash", p, "-h", "panel.invalid", "-k", key, "-n", "br-test")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CLUSTERDUCKS_PREFIX=" + filepath.Join(dir, "root")}
		out, _ := cmd.CombinedOutput()
		if bytes.Contains(out, []byte("install.sh: ")) {
			t.Fatalf("the first %d bytes ran something:\n%s", cut, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "root")); err == nil {
			t.Fatalf("the first %d bytes wrote files", cut)
		}
	}
}

// On a machine without systemd or ZFS (this one), the preflight names every missing
// piece at once and changes nothing.
func TestInstallPreflightSaysWhatIsMissing(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Fatal("this test needs a machine that does not run systemd (a build container)")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	cmd := exec.Command("unshare", "-n", "dash", "install.sh", "-h", "panel.invalid", "-k", filepath.Join(dir, "none.key"), "-n", "br-test", "-y")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CLUSTERDUCKS_PREFIX=" + root}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("install.sh succeeded without systemd:\n%s", out)
	}
	for _, want := range []string{"is missing:", "systemd", "server key file", "network bridge br-test"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the preflight does not mention %q:\n%s", want, out)
		}
	}
	// The pieces only containers need are warned about, never required.
	for cmdName, pkg := range map[string]string{"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap"} {
		present := false
		for _, d := range filepath.SplitList("/usr/sbin:/usr/bin:/sbin:/bin") {
			if _, err := os.Stat(filepath.Join(d, cmdName)); err == nil {
				present = true
			}
		}
		if warned := bytes.Contains(out, []byte("warning: ")) && bytes.Contains(out, []byte("(apt-get install "+pkg+")")); warned == present {
			t.Errorf("%s installed: %v, but warned about: %v:\n%s", cmdName, present, warned, out)
		}
	}
	if _, err := os.Stat(root); err == nil {
		t.Error("a failed preflight wrote files")
	}
	// http is refused unless asked for.
	cmd = exec.Command("dash", "install.sh", "-h", "panel.invalid", "-k", "x", "-n", "br0")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CLUSTERDUCKS_PANEL_URL=http://panel.invalid"}
	if out, err := cmd.CombinedOutput(); err == nil || !bytes.Contains(out, []byte("refusing http://panel.invalid")) {
		t.Errorf("http panel: %v\n%s", err, out)
	}
	cmd = exec.Command("dash", "install.sh", "-h", "panel.invalid")
	if out, err := cmd.CombinedOutput(); err == nil || !bytes.Contains(out, []byte("usage:")) {
		t.Errorf("missing flags: %v\n%s", err, out)
	}
}

// The units restart their process for ever and run the one binary's sub-command.
func TestUnits(t *testing.T) {
	for unit, cmd := range map[string]string{
		"clusterducks-panel.service":  "ExecStart=/usr/local/bin/clusterducks panel",
		"clusterducks-tunnel.service": "ExecStart=/usr/local/bin/clusterducks tunnel",
	} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{cmd, "Restart=always", "After=network-online.target", "WantedBy=multi-user.target", "EnvironmentFile=/etc/clusterducks/"} {
			if !bytes.Contains(b, []byte(want+"\n")) && !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s lacks %q", unit, want)
			}
		}
	}
}

// Every clusterducks_ metric the Grafana dashboard queries is one the processes declare.
func TestGrafanaDashboardUsesDeclaredMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	reg := cdmetrics.New("agent", "test")
	agentmetrics.NewAgent(reg)
	ch := make(chan *prometheus.Desc, 1000)
	reg.Describe(ch)
	close(ch)
	for desc := range ch {
		// Desc's String is the only way to its name: fqName: "name".
		s := desc.String()
		if i := strings.Index(s, `fqName: "`); i >= 0 {
			rest := s[i+len(`fqName: "`):]
			declared[rest[:strings.IndexByte(rest, '"')]] = true
		}
	}
	name := regexp.MustCompile(`clusterducks_[a-z_]+`)
	used := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				used++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
				if !declared[base] {
					t.Errorf("panel %q queries %s, which no process declares", p.Title, n)
				}
			}
		}
	}
	if used < 10 {
		t.Errorf("the dashboard uses only %d clusterducks metrics", used)
	}
}
