package boot

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Endpoint is a server's boot HTTP endpoint as devices reach it: GET /boot.ipxe answered
// by the service itself, any other path (the OS's check-in, the metrics) by the handler
// it was made with.
//
// It runs on fasthttp rather than net/http: in a boot storm every device asks at once,
// and net/http's goroutine, buffers and header maps per request cost about as much CPU
// as the answer itself (test/bench/netboot BenchmarkBootViewStorm measures it).
type Endpoint struct {
	srv    *fasthttp.Server
	ctx    context.Context // the answers' context: ends with the endpoint
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

// Endpoint returns the boot endpoint of s; other serves every path but /boot.ipxe (nil:
// 404).
func (s *Service) Endpoint(other http.Handler) *Endpoint {
	e := &Endpoint{}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	var rest fasthttp.RequestHandler
	if other != nil {
		rest = fasthttpadaptor.NewFastHTTPHandler(other)
	}
	e.srv = &fasthttp.Server{
		Handler: func(c *fasthttp.RequestCtx) {
			if string(c.Path()) == "/boot.ipxe" {
				s.serveFast(e.ctx, c)
				return
			}
			if rest == nil {
				c.Error("404 page not found", fasthttp.StatusNotFound)
				return
			}
			rest(c)
		},
		// A device sends a GET with a short query: no body, little header.
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           time.Minute,
		MaxRequestBodySize:    64 << 10,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
		Logger:                fastLogger{s.log},
	}
	return e
}

// Serve answers on ln until Close.
func (e *Endpoint) Serve(ln net.Listener) error { return e.srv.Serve(ln) }

// Close stops listening and ends the connections, waiting at most a few seconds for the
// requests being answered. Closing twice is harmless.
func (e *Endpoint) Close() error {
	e.once.Do(func() {
		e.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		e.err = e.srv.ShutdownWithContext(ctx)
	})
	return e.err
}

// serveFast is ServeHTTP on fasthttp.
func (s *Service) serveFast(ctx context.Context, c *fasthttp.RequestCtx) {
	if !c.IsGet() && !c.IsHead() {
		c.Error("method not allowed", fasthttp.StatusMethodNotAllowed)
		return
	}
	c.SetContentType("text/plain; charset=utf-8")
	c.Response.Header.Set("Cache-Control", "no-store")
	q := c.QueryArgs()
	c.SetBodyString(s.answerQuery(ctx, func(k string) string { return string(q.Peek(k)) }))
}

// answerQuery answers GET /boot.ipxe with the query get reads, however the request was
// read: without a mac the static script that chains back with the device's MAC and
// UUID; with one, the device's own script.
func (s *Service) answerQuery(ctx context.Context, get func(key string) string) string {
	mac := get("mac")
	if mac == "" {
		return ChainScript()
	}
	group, _ := strconv.ParseUint(get("group"), 10, 32)
	hop, _ := strconv.Atoi(get("hop"))
	return s.observed(ctx, mac, get("uuid"), uint(group), hop)
}

// observed is script, counted and timed by the observer.
func (s *Service) observed(ctx context.Context, mac, uuid string, group uint, hop int) string {
	if s.cfg.Observer == nil {
		return s.script(ctx, mac, uuid, group, hop)
	}
	s.cfg.Observer.BootStarted()
	start := time.Now()
	script := s.script(ctx, mac, uuid, group, hop)
	s.cfg.Observer.BootDone(ScriptKind(script), time.Since(start))
	return script
}

// fastLogger puts fasthttp's complaints (a malformed request, a timeout) in the agent's
// log at debug level: they are a device's or a scanner's trouble, not the server's.
type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	l.log.Debug("boot endpoint: " + fmt.Sprintf(format, args...))
}
