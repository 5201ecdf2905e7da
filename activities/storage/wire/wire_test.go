package wire_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

func TestNormalizeMAC(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"52:54:00:AB:cd:01", "52:54:00:ab:cd:01"},
		{"52-54-00-ab-cd-01", "52:54:00:ab:cd:01"}, // iPXE's ${net0/mac:hexhyp}
		{"5254.00ab.cd01", "52:54:00:ab:cd:01"},
		{" 525400abcd01 ", "52:54:00:ab:cd:01"},
		{"", ""}, {"52:54:00", ""}, {"zz:54:00:ab:cd:01", ""}, {"52:54:00:ab:cd:01:02", ""},
	} {
		got, err := wire.NormalizeMAC(c.in)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "MAC address like") {
			t.Errorf("NormalizeMAC(%q): the error %q does not say what is expected", c.in, err)
		}
	}
}

func TestNormalizeUUID(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"4C4C4544-0037-3010-8052-B4C04F4A4E31", "4c4c4544-0037-3010-8052-b4c04f4a4e31"},
		{" 4c4c4544-0037-3010-8052-b4c04f4a4e31\n", "4c4c4544-0037-3010-8052-b4c04f4a4e31"},
		{"4c4c45440037301080 52b4c04f4a4e31", ""}, {"4c4c4544-0037-3010-8052-b4c04f4a4e3g", ""}, {"", ""},
	} {
		if got := wire.NormalizeUUID(c.in); got != c.want {
			t.Errorf("NormalizeUUID(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExportIQN(t *testing.T) {
	for _, c := range []struct {
		e    wire.Export
		want string
	}{
		{wire.Export{Kind: "device", ID: 7, NetworkID: 2}, "iqn.2026-11.dev.clusterducks:n2.device7"},
		{wire.Export{Kind: "group", ID: 3, NetworkID: 2}, "iqn.2026-11.dev.clusterducks:n2.group3"},
		{wire.Export{Kind: "volume", ID: 4, NetworkID: 2}, "iqn.2026-11.dev.clusterducks:n2.volume4"},
		{wire.Export{Kind: "vdisk", ID: 4, NetworkID: 2}, ""},
	} {
		if got := c.e.IQN(); got != c.want {
			t.Errorf("%+v.IQN() = %q, want %q", c.e, got, c.want)
		}
	}
}

func TestReportBooted(t *testing.T) {
	for a, want := range map[wire.Action]bool{wire.BootClone: true, wire.Provision: true, wire.Redirect: false, wire.Wait: false, wire.Maintenance: false} {
		if got := (wire.Report{Action: a}).Booted(); got != want {
			t.Errorf("%s: booted %v, want %v", a, got, want)
		}
	}
}

// The client sends the server key and JSON, decodes answers, and tells a refusal (4xx,
// with the panel's message and field) from a panel it cannot reach (network, 5xx).
func TestClient(t *testing.T) {
	var got struct {
		auth, method, path string
		body               map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.auth, got.method, got.path, got.body = r.Header.Get("Authorization"), r.Method, r.URL.Path, nil
		json.NewDecoder(r.Body).Decode(&got.body) //nolint:errcheck
		switch r.URL.Path {
		case wire.Prefix + wire.PathRegister:
			json.NewEncoder(w).Encode(wire.RegisterResponse{ServerID: 5, TaskQueue: wire.ServerQueue(5), //nolint:errcheck
				Operation: &wire.OperationRef{ID: 9, URL: "/api/v0.9.2/operations/9.json", State: "queued"}})
		case wire.Prefix + wire.PathExports:
			json.NewEncoder(w).Encode([]wire.Export{{Kind: "device", ID: 7, NetworkID: 1}}) //nolint:errcheck
		case wire.Prefix + wire.PathStats:
			w.WriteHeader(http.StatusNoContent)
		case wire.Prefix + wire.PathCertificate:
			w.WriteHeader(http.StatusUnprocessableEntity)
			json.NewEncoder(w).Encode(wire.ErrorBody{Error: "csr_pem must be a PEM CERTIFICATE REQUEST", Field: "csr_pem"}) //nolint:errcheck
		default:
			http.Error(w, "down for maintenance", http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := wire.NewClient(srv.URL+"/", " cdk_KEY\n")

	reg, err := c.Register(ctx, wire.RegisterRequest{Addr: "10.0.0.5:8081", Version: "v1"})
	if err != nil || reg.ServerID != 5 || reg.TaskQueue != "server-5" || reg.Operation == nil || reg.Operation.ID != 9 {
		t.Fatalf("register = %+v, %v", reg, err)
	}
	if got.auth != "Bearer cdk_KEY" || got.method != http.MethodPost || got.body["addr"] != "10.0.0.5:8081" || got.body["version"] != "v1" {
		t.Errorf("register sent %+v", got)
	}
	if _, ok := got.body["csr_pem"]; ok {
		t.Errorf("register without a CSR sent csr_pem: %v", got.body)
	}
	if ex, err := c.Exports(ctx); err != nil || len(ex) != 1 || ex[0].ID != 7 || got.method != http.MethodGet {
		t.Errorf("exports = %+v, %v (%s)", ex, err, got.method)
	}
	if err := c.Stats(ctx, &wire.StatsReport{PoolHealth: "ONLINE"}); err != nil || got.body["pool_health"] != "ONLINE" {
		t.Errorf("stats: %v, sent %v", err, got.body)
	}

	_, err = c.Certificate(ctx, wire.CertificateRequest{CSRPEM: "x"})
	var se *wire.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnprocessableEntity || se.Body.Field != "csr_pem" ||
		!wire.IsStatus(err, http.StatusUnprocessableEntity) || errors.Is(err, wire.ErrUnreachable) {
		t.Errorf("a refusal: %v", err)
	}
	if err := c.RecordClone(ctx, wire.ProvisionRequest{DeviceID: 7}); !errors.Is(err, wire.ErrUnreachable) || !wire.IsStatus(err, http.StatusBadGateway) ||
		!strings.Contains(err.Error(), "down for maintenance") {
		t.Errorf("a 502: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	if _, err := wire.NewClient(gone, "k").Boot(ctx, wire.Query{MAC: "52:54:00:00:00:01"}); !errors.Is(err, wire.ErrUnreachable) {
		t.Errorf("a panel that is not there: %v", err)
	}
}

func TestAgentIdentityURI(t *testing.T) {
	id := wire.AgentIdentity{NetworkID: 3, ServerID: 12}
	if got := id.URI().String(); got != "clusterducks:network/3/server/12" {
		t.Errorf("URI = %s", got)
	}
	if id.CommonName() != "server-12" || id.DNSName() != "server-12.network-3.clusterducks.internal" {
		t.Errorf("names: %s %s", id.CommonName(), id.DNSName())
	}
	for _, c := range []struct {
		uri  string
		want wire.AgentIdentity
		ok   bool
	}{
		{"clusterducks:network/3/server/12", id, true},
		{"clusterducks:network/3/server/12/x", wire.AgentIdentity{}, false},
		{"clusterducks:network/3/server/0", wire.AgentIdentity{}, false},
		{"clusterducks:network/-3/server/12", wire.AgentIdentity{}, false},
		{"spiffe://example/server/12", wire.AgentIdentity{}, false},
	} {
		u, err := url.Parse(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.IdentityOf(&x509.Certificate{URIs: []*url.URL{u}})
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("IdentityOf(%s) = %+v, %v", c.uri, got, err)
		}
	}
}

// TestStatsReportCounters: a report without the agent's counters (an older agent's)
// encodes and decodes without them (nil, left out); a newer agent's carries them.
func TestStatsReportCounters(t *testing.T) {
	old := []byte(`{"pool_health":"ONLINE","pool_size":10,"pool_free":5,"detail":{}}`)
	var r wire.StatsReport
	if err := json.Unmarshal(old, &r); err != nil || r.ISCSISessions != nil || r.BootRequests != nil || r.ReplicationBytes != nil {
		t.Fatalf("an older agent's report: %+v %v", r, err)
	}
	if b, _ := json.Marshal(r); strings.Contains(string(b), "iscsi_sessions") {
		t.Fatalf("absent counters are sent: %s", b)
	}
	n, m, k := int64(2), int64(7), int64(1<<20)
	b, _ := json.Marshal(wire.StatsReport{PoolHealth: "ONLINE", ISCSISessions: &n, BootRequests: &m, ReplicationBytes: &k})
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["iscsi_sessions"] != float64(2) || back["boot_requests"] != float64(7) || back["replication_bytes"] != float64(1<<20) {
		t.Fatalf("a newer agent's report: %s", b)
	}
}

// TestProvisionUpdateID: a boot asked again (same decision, same revision) joins the
// first request's update; the same target asked after the device changed (moved to
// another server and back, at a newer revision) gets an id of its own, as does any other
// target.
func TestProvisionUpdateID(t *testing.T) {
	first := wire.ProvisionRequest{DeviceID: 7, GroupID: 3, Version: 2, ServerID: 1, Revision: 10}
	again := first
	again.UUID, again.Locked = "6b2f3c1e-0000-4000-8000-00000000a014", true
	if a, b := wire.ProvisionUpdateID(first), wire.ProvisionUpdateID(again); a != b {
		t.Errorf("a repeated request: %q, then %q", a, b)
	}
	moved := first
	moved.ServerID, moved.Revision, moved.Reprovision, moved.OldServerID = 2, 11, true, 1
	back := first
	back.Revision, back.Reprovision, back.OldServerID = 12, true, 2
	seen := map[string]string{}
	for name, r := range map[string]wire.ProvisionRequest{"first": first, "moved": moved, "back": back,
		"other version": {DeviceID: 7, GroupID: 3, Version: 3, ServerID: 1, Revision: 10},
		"other group":   {DeviceID: 7, GroupID: 4, Version: 2, ServerID: 1, Revision: 10},
		"other device":  {DeviceID: 8, GroupID: 3, Version: 2, ServerID: 1, Revision: 10},
	} {
		id := wire.ProvisionUpdateID(r)
		if other, ok := seen[id]; ok {
			t.Errorf("%s and %s share the update id %q", name, other, id)
		}
		seen[id] = name
	}
}
