package boot

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// The endpoint on fasthttp answers /boot.ipxe as ServeHTTP does, and every other path
// with the handler it was given.
func TestEndpointAnswersLikeServeHTTP(t *testing.T) {
	in := info(true, 1)
	in.Group.Assigned = 4
	in.Group.Versions = append(in.Group.Versions, wire.VersionInfo{Number: 4, Servers: []uint{2}})
	svc, _, _, _, _ := newTestService(t, in)
	other := http.NewServeMux()
	other.HandleFunc("/booted", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ep := svc.Endpoint(other)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	do := func(method, path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := do("GET", "/boot.ipxe")
	if resp.StatusCode != 200 || body != ChainScript() || resp.Header.Get("Cache-Control") != "no-store" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("chain: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	q := "/boot.ipxe?mac=" + strings.ReplaceAll(mac1, ":", "-") + "&uuid=" + uuid1 + "&hop=2"
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, httptest.NewRequest("GET", q, nil))
	if resp, body = do("GET", q); resp.StatusCode != 200 || body != rec.Body.String() || !strings.Contains(body, "boot.ipxe?hop=3&mac=") {
		t.Fatalf("device: %d\n%s\nServeHTTP:\n%s", resp.StatusCode, body, rec.Body.String())
	}
	if resp, body = do("HEAD", q); resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	if resp, _ = do("POST", "/boot.ipxe"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	if resp, _ = do("POST", "/booted?mac="+mac1); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("other path: %d", resp.StatusCode)
	}
	if resp, _ = do("GET", "/nothing"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if err := ep.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Without another handler every path but /boot.ipxe is not found.
func TestEndpointWithoutOtherHandler(t *testing.T) {
	svc, _, _, _, _ := newTestService(t, info(false, 1))
	ep := svc.Endpoint(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ep.Serve(ln) //nolint:errcheck
	defer ep.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
