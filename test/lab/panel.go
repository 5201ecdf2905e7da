package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clusterducks/clusterducks/test/harness/proc"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DevPanel is a `clusterducks dev` process (panel, embedded Temporal, SQLite) on host
// loopback, the panel the lab's agents register with.
type DevPanel struct {
	URL        string // http://127.0.0.1:PORT
	Token      string // the admin's API token, as printed at start
	TemporalUI string // the Temporal Web UI's URL; "" when started without it
	Data       string

	cmd  *exec.Cmd
	out  *proc.SyncBuffer
	done chan struct{}
	once sync.Once
}

// StartDevPanel runs `bin dev` with its data in dataDir, on a free loopback port with
// Temporal on a free port (with its Web UI when temporalUI is set), and waits (up to 3
// minutes) for its URL and API token. Every line it prints is also copied to echo when
// echo is not nil.
func StartDevPanel(ctx context.Context, bin, dataDir string, echo io.Writer, temporalUI bool) (*DevPanel, error) {
	args := []string{"dev", "--data", dataDir, "--listen", "127.0.0.1:0", "--temporal-port", "-1"}
	if !temporalUI {
		args = append(args, "--no-temporal-ui")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_VERSION_CHECK_DISABLED=1")
	if os.Getenv("HEALTH_EVERY") == "" {
		// The lab's servers are checked through their tunnel every 5 s (40 s in production).
		cmd.Env = append(cmd.Env, "HEALTH_EVERY=5s")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &DevPanel{Data: dataDir, cmd: cmd, out: &proc.SyncBuffer{Echo: echo}, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("clusterducks dev: %w", err)
	}
	found := make(chan struct{})
	dash := regexp.MustCompile(`Dashboard: (http://\S+)/`)
	ui := regexp.MustCompile(`Temporal Web UI: (http://\S+)/`)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.out.Write([]byte(line + "\n")) //nolint:errcheck
			if m := dash.FindStringSubmatch(line); m != nil && p.URL == "" {
				p.URL = m[1]
			}
			if m := ui.FindStringSubmatch(line); m != nil && p.TemporalUI == "" {
				p.TemporalUI = m[1]
			}
			if tok, ok := strings.CutPrefix(line, "API token: "); ok && p.Token == "" {
				p.Token = tok
				close(found)
			}
		}
	}()
	go func() {
		cmd.Wait() //nolint:errcheck
		close(p.done)
	}()
	select {
	case <-found:
		return p, nil
	case <-p.done:
		err = errors.New("clusterducks dev exited")
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(3 * time.Minute):
		err = errors.New("clusterducks dev printed no API token in 3 minutes")
	}
	p.Stop() //nolint:errcheck
	return nil, fmt.Errorf("%w:\n%s", err, tailString(p.Output(), 4000))
}

// Output is everything the panel printed so far.
func (p *DevPanel) Output() string { return p.out.String() }

// Done is closed when the panel process has exited.
func (p *DevPanel) Done() <-chan struct{} { return p.done }

// Stop ends the panel (SIGTERM, then SIGKILL after 20 s). Safe to call more than once.
func (p *DevPanel) Stop() error {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill() //nolint:errcheck
			<-p.done
		}
	})
	return nil
}

// Pid is the dev panel's process id (benchmarks read its memory in /proc).
func (p *DevPanel) Pid() int { return p.cmd.Process.Pid }

// Call does one API request with the admin's token and decodes the JSON answer into out.
func (p *DevPanel) Call(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.URL+"/api/v0.9.2/"+strings.TrimPrefix(path, "/"), r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", `Token token="`+p.Token+`"`)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// CreateNetwork creates a network under the panel's first client and returns its id.
func (p *DevPanel) CreateNetwork(ctx context.Context, name string) (uint, error) {
	var clients []struct {
		ID uint `json:"id"`
	}
	if err := p.Call(ctx, "GET", "clients.json", nil, &clients); err != nil {
		return 0, err
	}
	if len(clients) == 0 {
		return 0, errors.New("the panel has no client")
	}
	var network struct {
		ID uint `json:"id"`
	}
	if err := p.Call(ctx, "POST", "networks.json", map[string]any{"Name": name, "Client": clients[0].ID}, &network); err != nil {
		return 0, err
	}
	return network.ID, nil
}

// CreateServer adds a server to a network and returns its id and its key (shown once).
// A tunnelPort, when given, is the server's Tunnel Port.
func (p *DevPanel) CreateServer(ctx context.Context, networkID uint, name, ip, pool string, tunnelPort ...int) (uint, []byte, error) {
	var server struct {
		ID  uint   `json:"id"`
		Key string `json:"key"`
	}
	body := map[string]any{"Name": name, "network": networkID, "IP": ip, "Pool": pool}
	if len(tunnelPort) > 0 {
		body["tunnel_port"] = tunnelPort[0]
	}
	if err := p.Call(ctx, "POST", "servers.json", body, &server); err != nil {
		return 0, nil, err
	}
	if server.Key == "" {
		return 0, nil, fmt.Errorf("server %s created without a key", name)
	}
	return server.ID, []byte(server.Key), nil
}

// Lab is a dev panel with storage servers registered as one network's servers: the whole
// guide on one machine (`task lab`).
type Lab struct {
	Panel     *DevPanel
	NetworkID uint
	Servers   []*Server
	ServerIDs []uint // the panel's id of each of Servers
	// Tunnel is the network's `clusterducks tunnel` process on the host (agents in the VMs
	// dial it at 10.0.2.2); TunnelPorts[i] is Servers[i]'s Tunnel Port on host loopback.
	Tunnel      *exec.Cmd
	TunnelPorts []int
}

// StartLab builds clusterducks, starts a dev panel with its data in dataDir, creates the
// network "Lab" with n servers lab1…labn (pool tank) and boots one VM per server running
// `clusterducks agent` with that server's key. logf gets progress; echo gets the panel's
// output (both may be nil). Stop it with Stop.
func StartLab(ctx context.Context, n int, dataDir string, echo io.Writer, logf func(string, ...any)) (*Lab, error) {
	return StartLabWith(ctx, n, dataDir, echo, logf, LabOptions{})
}

// LabOptions change how StartLabWith boots the lab's servers.
type LabOptions struct {
	// Systemd boots the servers with systemd as init (Options.Systemd); their agent runs
	// as the enabled unit AgentUnit, so it comes back after a Server.Reboot.
	Systemd bool
}

// AgentUnit is the unit that runs the agent in a systemd-mode lab server.
const AgentUnit = "lab-agent.service"

// agentUnitText runs the agent's command from the share once systemd.sh has installed
// the binary (at each boot); systemd restarts it if it exits.
const agentUnitText = `[Unit]
Description=clusterducks agent (storage lab)
After=lab-host.service zfs-mount.service network.target

[Service]
ExecStart=/bin/sh -c 'i=0; while [ ! -f /mnt/host/ready ] || [ ! -x /usr/local/bin/clusterducks ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.5; done; exec /bin/sh /mnt/host/command.sh'
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`

// StartLabWith is StartLab with options.
func StartLabWith(ctx context.Context, n int, dataDir string, echo io.Writer, logf func(string, ...any), lo LabOptions) (*Lab, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	// The image build (first run) and the binary build can go side by side.
	imgErr := make(chan error, 1)
	go func() { _, err := EnsureImage(ctx, logf); imgErr <- err }()
	bin, err := BuildBinary(ctx)
	if err != nil {
		<-imgErr
		return nil, err
	}
	if err := <-imgErr; err != nil {
		return nil, err
	}
	panel, err := StartDevPanel(ctx, bin, dataDir, echo, true) // task lab prints the Temporal UI
	if err != nil {
		return nil, err
	}
	l := &Lab{Panel: panel}
	if l.NetworkID, err = panel.CreateNetwork(ctx, "Lab"); err != nil {
		l.Stop()
		return nil, err
	}
	if err := l.startTunnel(ctx, bin, dataDir, echo); err != nil {
		l.Stop()
		return nil, err
	}
	opts := make([]Options, n)
	for i := range opts {
		name := fmt.Sprintf("lab%d", i+1)
		port, err := proc.FreePort()
		if err != nil {
			l.Stop()
			return nil, err
		}
		l.TunnelPorts = append(l.TunnelPorts, port)
		// The server's IP is the address its agent serves on inside its VM; other VMs
		// (netbooting devices) reach it through its forwards on host loopback (10.0.2.2).
		id, key, err := panel.CreateServer(ctx, l.NetworkID, name, GuestIP, "tank", port)
		if err != nil {
			l.Stop()
			return nil, err
		}
		l.ServerIDs = append(l.ServerIDs, id)
		opts[i] = AgentOptions(name, panel.URL, key)
		opts[i].Logf = logf
		opts[i].Systemd = lo.Systemd
	}
	if l.Servers, err = StartServers(ctx, opts); err != nil {
		l.Stop()
		return nil, err
	}
	if lo.Systemd {
		for _, s := range l.Servers {
			// The share's ready marker is from this boot: systemd.sh wrote it before the
			// exec helper answered.
			if _, err := s.ExecInput(ctx, []byte(agentUnitText), "sh", "-c",
				"cat >/etc/systemd/system/"+AgentUnit+" && systemctl daemon-reload && systemctl enable --now "+AgentUnit); err != nil {
				l.Stop()
				return nil, fmt.Errorf("%s: agent unit: %w", s.Name, err)
			}
		}
	}
	return l, nil
}

// startTunnel adds the network's tunnel (on host loopback) and starts its process.
func (l *Lab) startTunnel(ctx context.Context, bin, dataDir string, echo io.Writer) error {
	var tunnel struct {
		Key string `json:"key"`
	}
	if err := l.Panel.Call(ctx, "POST", "tunnels.json", map[string]any{"Alias": "lab-tunnel", "network": l.NetworkID, "IP": "127.0.0.1"}, &tunnel); err != nil {
		return err
	}
	dir := filepath.Join(dataDir, "tunnel")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "tunnel.keyfile")
	if err := os.WriteFile(keyFile, []byte(tunnel.Key), 0o600); err != nil {
		return err
	}
	port, err := proc.FreePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "tunnel", "--panel", l.Panel.URL, "--key", keyFile, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--ports-host", "127.0.0.1", "--state", dir)
	out := &proc.SyncBuffer{Echo: echo}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("clusterducks tunnel: %w", err)
	}
	go cmd.Wait() //nolint:errcheck
	l.Tunnel = cmd
	return nil
}

// Stop stops the servers, the tunnel, then the panel.
func (l *Lab) Stop() {
	for _, s := range l.Servers {
		s.Stop() //nolint:errcheck
	}
	if l.Tunnel != nil && l.Tunnel.Process != nil {
		l.Tunnel.Process.Kill() //nolint:errcheck
	}
	if l.Panel != nil {
		l.Panel.Stop() //nolint:errcheck
	}
}

// StartTestPanel builds clusterducks and runs a dev panel for a test with its data in a
// temporary directory; it is stopped when the test ends, with its output in the log of
// a failed test.
func StartTestPanel(ctx context.Context, t testing.TB) *DevPanel {
	t.Helper()
	bin, err := BuildBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartDevPanel(ctx, bin, t.TempDir(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("panel output:\n%s", tailString(p.Output(), 6000))
		}
		p.Stop() //nolint:errcheck
	})
	return p
}
