package webui_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/webui"
)

// sessionCookie logs in over plain HTTP and returns the session cookie's value.
func sessionCookie(t *testing.T, p *panelT, email, password string) string {
	t.Helper()
	resp := loginHTTP(t, p, email, password, nil)
	for _, c := range resp.Cookies() {
		if c.Name == "cd_session" {
			return c.Value
		}
	}
	t.Fatalf("no session cookie after login (%d)", resp.StatusCode)
	return ""
}

// streamClient dials a connection per stream and keeps none: a pooled transport may dial a
// spare connection that never carries a request, and the server counts such a connection
// as busy for its first 5 s (fasthttp, like net/http), which a shutdown then waits out.
var streamClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// events opens the live-progress stream and returns its lines as they come.
func events(t *testing.T, p *panelT, session, query string) (int, <-chan string) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.URL+"/events/operations?"+query, nil)
	req.AddCookie(&http.Cookie{Name: "cd_session", Value: session})
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	if resp.StatusCode != 200 {
		resp.Body.Close()
	}
	return resp.StatusCode, lines
}

func waitLine(t *testing.T, lines <-chan string, prefix string, bound time.Duration) string {
	t.Helper()
	deadline := time.After(bound)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream closed before a line starting %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line starting %q within %s", prefix, bound)
		}
	}
}

// TestStream: the live-progress stream sends an operation's changes and "end" when it
// finishes; it refuses operations the caller may not see, lasts at most its lifetime,
// and does not hold up the panel's shutdown.
func TestStream(t *testing.T) {
	ctx := context.Background()
	p := startPanel(t, "sqlite", webui.Options{PollInterval: 100 * time.Millisecond, StreamLifetime: 2 * time.Second})
	w := buildWorld(t, p)
	var op models.Operation
	if err := p.DB.Where("object_type = ? AND object_id = ?", "volume", w.objects["A1"]["vol"]).Take(&op).Error; err != nil {
		t.Fatal(err)
	}
	var opB models.Operation
	if err := p.DB.Where("object_type = ? AND object_id = ?", "volume", w.objects["B1"]["vol"]).Take(&opB).Error; err != nil {
		t.Fatal(err)
	}
	sessA := sessionCookie(t, p, "user-a@example.com", userPassword)

	// Another client's operation: 404, no stream.
	if code, _ := events(t, p, sessA, fmt.Sprintf("id=%d&id=%d", op.ID, opB.ID)); code != http.StatusNotFound {
		t.Fatalf("stream of client B's operation for client A's admin = %d", code)
	}

	// Changes arrive, then "end" once finished.
	code, lines := events(t, p, sessA, fmt.Sprintf("id=%d", op.ID))
	if code != 200 {
		t.Fatalf("stream = %d", code)
	}
	if l := waitLine(t, lines, "data: ", 5*time.Second); !strings.Contains(l, `"state":"queued"`) {
		t.Fatalf("first event: %s", l)
	}
	if err := models.RecordProgress(ctx, p.DB, models.WorkflowProgress{OperationID: op.ID, Step: "zfs create", Percent: 30}); err != nil {
		t.Fatal(err)
	}
	if l := waitLine(t, lines, "data: ", 5*time.Second); !strings.Contains(l, `"percent":30`) || !strings.Contains(l, `"step":"zfs create"`) {
		t.Fatalf("progress event: %s", l)
	}
	if err := models.FinishOperation(ctx, p.DB, models.Outcome{WorkflowProgress: models.WorkflowProgress{OperationID: op.ID}}); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, "event: end", 5*time.Second)

	// A stream of an operation that never ends closes after its lifetime (the browser reconnects).
	var opA2 models.Operation
	if err := p.DB.Where("object_type = ? AND object_id = ?", "volume", w.objects["A2"]["vol"]).Take(&opA2).Error; err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, lines = events(t, p, sessA, fmt.Sprintf("id=%d", opA2.ID))
	for range lines {
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("stream lasted %s, lifetime 2 s", d)
	}

	// An open stream does not hold up the shutdown.
	_, lines = events(t, p, sessA, fmt.Sprintf("id=%d", opA2.ID))
	waitLine(t, lines, "data: ", 5*time.Second)
	http.DefaultTransport.(*http.Transport).CloseIdleConnections() // the logins' connections, and any spare one
	start = time.Now()
	if err := p.App.ShutdownWithTimeout(5 * time.Second); err != nil {
		t.Fatalf("shutdown with an open stream: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %s with an open stream", d)
	}
}
