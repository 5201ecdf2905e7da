package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// panelProc is a `clusterducks dev` panel (embedded Temporal, SQLite) on host loopback.
type panelProc struct {
	URL, Token string
	out        *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDevPanel runs `clusterducks dev` from bin and waits for its URL and API token.
func startDevPanel(t *testing.T, bin string) *panelProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "dev", "--data", t.TempDir(), "--listen", "127.0.0.1:0",
		"--temporal-port", "-1", "--no-temporal-ui")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Env = append(os.Environ(), "TEMPORAL_VERSION_CHECK_DISABLED=1")
	p := &panelProc{out: &syncBuffer{}}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait() //nolint:errcheck
		if t.Failed() {
			t.Logf("panel output:\n%s", tailString(p.out.String(), 6000))
		}
	})
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.out.Write([]byte(line + "\n")) //nolint:errcheck
			if m := regexp.MustCompile(`Dashboard: (http://\S+)/`).FindStringSubmatch(line); m != nil {
				p.URL = m[1]
			}
			if tok, ok := strings.CutPrefix(line, "API token: "); ok && p.Token == "" {
				p.Token = tok
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(3 * time.Minute):
		t.Fatalf("clusterducks dev printed no API token in 3 minutes:\n%s", p.out.String())
	}
	return p
}

// call does one API request with the admin's token and decodes the JSON answer into out.
func (p *panelProc) call(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.URL+"/api/v0.9.2/"+path, r)
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
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// TestAgentRegisters is the lab's acceptance: a storage-server VM boots, the agent in it
// registers with a panel on the host using its server key, connects to the panel's
// Temporal, runs the bootstrap workflow's go-zfs activity on its pool (the guide's layout
// appears on the guest's pool) and its pool status reaches the panel.
func TestAgentRegisters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	bin, err := BuildBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	panel := startDevPanel(t, bin)

	var clients []struct {
		ID uint `json:"id"`
	}
	if err := panel.call(ctx, "GET", "clients.json", nil, &clients); err != nil || len(clients) == 0 {
		t.Fatalf("clients: %v %v", clients, err)
	}
	var network struct {
		ID uint `json:"id"`
	}
	if err := panel.call(ctx, "POST", "networks.json", map[string]any{"Name": "Lab", "Client": clients[0].ID}, &network); err != nil {
		t.Fatal(err)
	}
	var server struct {
		ID  uint   `json:"id"`
		Key string `json:"key"`
	}
	if err := panel.call(ctx, "POST", "servers.json", map[string]any{
		"Name": "labmaster", "network": network.ID, "IP": GuestIP, "Pool": "tank",
	}, &server); err != nil {
		t.Fatal(err)
	}
	if server.Key == "" {
		t.Fatal("server created without a key")
	}

	srv := StartServer(t, AgentOptions("labmaster", panel.URL, []byte(server.Key)))

	// The bootstrap operation succeeds only after the agent ran its activity through Temporal.
	deadline := time.Now().Add(5 * time.Minute)
	var stats struct {
		Status     string          `json:"status"`
		PoolHealth string          `json:"pool_health"`
		PoolSize   int64           `json:"pool_size"`
		Stats      json.RawMessage `json:"stats"`
	}
	var boot struct {
		Kind, State, Error, Message string
		ObjectID                    uint `json:"object_id"`
	}
	for {
		var ops []struct {
			Kind     string `json:"kind"`
			State    string `json:"state"`
			Error    string `json:"error"`
			Message  string `json:"message"`
			ObjectID uint   `json:"object_id"`
		}
		if err := panel.call(ctx, "GET", "operations.json", nil, &ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Kind == "server-bootstrap" && op.ObjectID == server.ID {
				boot.Kind, boot.State, boot.Error, boot.Message, boot.ObjectID = op.Kind, op.State, op.Error, op.Message, op.ObjectID
			}
		}
		if err := panel.call(ctx, "GET", "servers/labmaster/stats.json", nil, &stats); err != nil {
			t.Fatal(err)
		}
		if boot.State == "failed" {
			t.Fatalf("bootstrap failed: %s\nagent log:\n%s", boot.Error, srv.Log("command.log"))
		}
		if boot.State == "succeeded" && stats.PoolHealth == "ONLINE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 minutes: bootstrap %+v, stats %+v\nagent log:\n%s", boot, stats, srv.Log("command.log"))
		}
		time.Sleep(time.Second)
	}
	t.Logf("bootstrap: %s; server status %q, pool %s, %d bytes", boot.Message, stats.Status, stats.PoolHealth, stats.PoolSize)
	if stats.PoolSize <= 0 {
		t.Errorf("pool size %d", stats.PoolSize)
	}
	// What the agent did through go-zfs is on the guest's pool.
	if out, err := srv.Exec(ctx, "zfs", "list", "-H", "-o", "name", "tank/iscsi"); err != nil || strings.TrimSpace(out) != "tank/iscsi" {
		t.Errorf("the bootstrap's layout is not on the pool: %q %v", out, err)
	}
}
