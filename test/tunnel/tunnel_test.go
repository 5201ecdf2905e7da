package tunnel_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/agentclient"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/api"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
)

// reconnectBound is how long agents may take to come back to a restarted tunnel: the
// tunnel's start and registration, then the agents' backoff (at most 8 s ×1.5) and a
// handshake.
const reconnectBound = 30 * time.Second

// TestTunnel: the panel reaches agents only through their network's tunnel; a tunnel port
// refuses anyone without the panel's certificate; the tunnel refuses an agent speaking
// for another server or network; agents come back by themselves to a restarted tunnel.
func TestTunnel(t *testing.T) {
	e := startEnv(t, &panel.HealthConfig{Every: time.Second, Rules: models.HealthRules{Failures: 2, Grace: time.Second},
		TunnelTimeout: 2 * time.Second, AgentTimeout: 3 * time.Second})
	n1 := e.network("N1", e.Admin.ClientID)
	tid, tkey := e.tunnel(n1, "t1")
	s1, k1, p1 := e.server(n1, "s1")
	s2, k2, p2 := e.server(n1, "s2")
	n2 := e.network("N2", e.Admin.ClientID)
	x1, kx, _ := e.server(n2, "x1")

	tun, listen := e.startTunnel(tkey)
	st1, st2, stx := t.TempDir(), t.TempDir(), t.TempDir()
	a1 := e.startAgent(k1, st1)
	e.startAgent(k2, st2)
	ax := e.startAgent(kx, stx) // network N2 has no tunnel: it pushes its stats

	// The health check asks each server through the tunnel: "Panel to server OK".
	token := harness.Token(t, e.DB, e.Admin.ID)
	took := eventually(t, 90*time.Second, "Panel to server OK through the tunnel", func() error {
		for _, name := range []string{"s1", "s2"} {
			var st models.ServerStats
			if err := getJSON(e.URL+"/api/v0.9.2/servers/"+name+"/stats.json", token, &st); err != nil {
				return err
			}
			if !strings.HasPrefix(st.Status, models.StatusPanelOK) || st.StatsAt == nil || st.PoolHealth != wire.PoolMissing {
				return fmt.Errorf("%s: %+v", name, st)
			}
		}
		return nil
	})
	t.Logf("first round trip through the tunnel for both agents after %v", took)

	// Each report leaves a sample for the server's charts, with what the agent served
	// (its metrics' totals): pulled through the tunnel (s1) or pushed by the agent (x1).
	eventually(t, 60*time.Second, "samples with the agents' counters", func() error {
		for _, name := range []string{"s1", "x1"} {
			var samples []models.ServerSample
			if err := getJSON(e.URL+"/api/v0.9.2/servers/"+name+"/samples.json", token, &samples); err != nil {
				return err
			}
			if len(samples) == 0 {
				return fmt.Errorf("%s: no samples", name)
			}
			last := samples[len(samples)-1]
			if last.ISCSISessions == nil || last.BootRequests == nil || last.ReplicationBytes == nil {
				return fmt.Errorf("%s: the last sample lacks the agent's counters: %+v", name, last)
			}
		}
		return nil
	})

	// The Tunnel Servers page: the tunnel's state and its connected agents, with the
	// table's refresh icon.
	secret, _, err := models.CreateSession(e.ctx, e.DB, e.Admin.ID, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Tunnel Servers page", func() error {
		page, err := dashboard(e.URL+"/tunnels", secret)
		if err != nil {
			return err
		}
		for _, want := range []string{"t1", "Running", "s1, s2", "data-refresh"} {
			if !strings.Contains(page, want) {
				return fmt.Errorf("the page lacks %q", want)
			}
		}
		return nil
	})

	// The panel's own client, through the tunnel port.
	var tun1 models.Tunnel
	if err := e.DB.Take(&tun1, tid).Error; err != nil {
		t.Fatal(err)
	}
	ac := agentclient.New(e.DB)
	var h wire.AgentHealth
	if err := ac.Get(e.ctx, &tun1, p1, wire.AgentPathHealth, &h); err != nil || h.ServerID != s1 {
		t.Fatalf("health of s1 through the tunnel: %+v %v", h, err)
	}
	if err := ac.Get(e.ctx, &tun1, p2, wire.AgentPathHealth, &h); err != nil || h.ServerID != s2 {
		t.Fatalf("health of s2 through the tunnel: %+v %v", h, err)
	}

	// The other way: the agent's boot view watches the panel through its tunnel session
	// (the tunnel carries the agent's streams to the panel), as its metrics count.
	eventually(t, 90*time.Second, "s1's boot view watching the panel through the tunnel", func() error {
		raw, err := ac.Fetch(e.ctx, &tun1, p1, "/metrics")
		if err != nil {
			return err
		}
		m := harness.ParseMetrics(t, bytes.NewReader(raw))
		if n := m.Sum("clusterducks_tunnel_panel_connections_total", map[string]string{"via": "tunnel"}); n < 1 {
			return fmt.Errorf("connections to the panel through the tunnel: %v (direct: %v)", n,
				m.Sum("clusterducks_tunnel_panel_connections_total", map[string]string{"via": "direct"}))
		}
		return nil
	})

	// The agent API is on no port of the agent's own: none of its listening sockets
	// answers it, in plain HTTP or TLS.
	ports := listeningPorts(t, a1.cmd.Process.Pid)
	if len(ports) == 0 {
		t.Fatal("the agent listens on nothing (its boot endpoint and iSCSI target should be there)")
	}
	for _, port := range ports {
		for _, scheme := range []string{"http", "https"} {
			c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			resp, err := c.Get(fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, wire.AgentPathHealth))
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var ah wire.AgentHealth
			if resp.StatusCode == 200 && json.Unmarshal(b, &ah) == nil && ah.ServerID != 0 {
				t.Fatalf("the agent API answers on the agent's own port %d (%s)", port, scheme)
			}
		}
	}

	// A tunnel port without the panel's certificate: no certificate, an agent's
	// certificate of the panel CA, or plain HTTP — all refused.
	for _, c := range []struct {
		name  string
		certs []tls.Certificate
	}{{"no certificate", nil}, {"an agent's certificate", []tls.Certificate{agentCert(t, st2)}}} {
		if err := tlsGet(fmt.Sprintf("127.0.0.1:%d", p1), c.certs); err == nil {
			t.Errorf("tunnel port with %s: answered", c.name)
		}
	}
	if resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", p1, wire.AgentPathHealth)); err == nil {
		resp.Body.Close()
		t.Errorf("tunnel port in plain HTTP: %d", resp.StatusCode)
	}

	// An agent may register only as itself, and only with its network's tunnel.
	if msg := hello(t, listen, agentCert(t, st2), s1); !strings.Contains(msg, "certificate names server") {
		t.Errorf("s2's certificate saying it is s1: %q", msg)
	}
	if msg := hello(t, listen, agentCert(t, stx), x1); !strings.Contains(msg, "this tunnel serves network") {
		t.Errorf("an agent of network N2 at N1's tunnel: %q", msg)
	}
	ax.kill()

	// Kill the tunnel and start it again: the agents come back by themselves.
	tun.signal(syscall.SIGKILL)
	<-tun.done
	if err := ac.Get(e.ctx, &tun1, p1, wire.AgentPathHealth, &h); err == nil {
		t.Fatal("s1 answered with its tunnel killed")
	}
	restarted := time.Now()
	tun.restart()
	took = eventually(t, reconnectBound, "agents back through the restarted tunnel", func() error {
		for _, p := range []int{p1, p2} {
			if err := ac.Get(e.ctx, &tun1, p, wire.AgentPathHealth, &h); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("both agents reachable %v after the tunnel restarted (bound %v)", time.Since(restarted).Round(time.Millisecond), reconnectBound)
	_ = took
}

// dashboard reads a dashboard page with a session.
func dashboard(url, session string) (string, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: session})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b), err
}

func getJSON(url, token string, out any) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// agentCert is the certificate an agent keeps in its state directory.
func agentCert(t *testing.T, state string) tls.Certificate {
	t.Helper()
	var c tls.Certificate
	eventually(t, 30*time.Second, "the agent's certificate", func() error {
		var err error
		c, err = tls.LoadX509KeyPair(filepath.Join(state, "agent.crt"), filepath.Join(state, "agent.key"))
		return err
	})
	return c
}

// tlsGet asks a tunnel port for the agent's health with certs; nil means it answered.
func tlsGet(addr string, certs []tls.Certificate) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: certs, InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + addr + wire.AgentPathHealth)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%d", resp.StatusCode)
	}
	return nil
}

// hello dials the tunnel as an agent with cert, says it is server id and returns the
// tunnel's refusal ("" when it welcomed it).
func hello(t *testing.T, addr string, cert tls.Certificate, id uint) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	b, _ := json.Marshal(wire.TunnelHello{ServerID: id})
	c.Write(append(b, '\n')) //nolint:errcheck
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return err.Error()
	}
	var w wire.TunnelWelcome
	if err := json.Unmarshal(line, &w); err != nil {
		return err.Error()
	}
	return w.Error
}

// listeningPorts lists the TCP ports process pid listens on (its sockets' inodes, found
// in the kernel's listening table).
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			i := strings.LastIndex(f[1], ":")
			if p, err := strconv.ParseInt(f[1][i+1:], 16, 32); err == nil {
				ports = append(ports, int(p))
			}
		}
	}
	return ports
}
