package harness

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/workers/temporalclient"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
)

// One in-process Temporal server per test binary (in-memory SQLite, ready in about half a
// second), started on first use. Tests isolate themselves with their own task queues;
// the storage workflows' queues are fixed ("panel", "server-<id>"), so at most one test
// of a binary runs a panel worker at a time.
var (
	temporalOnce sync.Once
	temporalSrv  *temporaltest.TestServer
	queueSeq     atomic.Int64
	temporalErr  error
)

// Temporal returns the test binary's shared Temporal server, starting it on first use.
// Its frontend listens on 127.0.0.1 (a storage lab guest reaches it at 10.0.2.2). The
// server's version check, which calls the internet, is off.
func Temporal(t testing.TB) *temporaltest.TestServer {
	t.Helper()
	temporalOnce.Do(func() {
		temporalSrv = temporaltest.NewServer(temporaltest.WithBaseServerOptions(
			temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
				dynamicconfig.EnableServerVersionCheck.Key():                []dynamicconfig.ConstrainedValue{{Value: false}},
				dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
			}),
		))
		// The panel's custom search attributes, as `dev` registers them in its server.
		c := temporalSrv.NewClientWithOptions(client.Options{})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := temporalclient.RegisterSearchAttributes(ctx, c, temporalSrv.GetDefaultNamespace()); err != nil {
			temporalErr = err
		}
	})
	if temporalErr != nil {
		t.Fatalf("harness: register search attributes: %v", temporalErr)
	}
	if temporalSrv == nil {
		t.Fatal("harness: the shared Temporal server did not start")
	}
	return temporalSrv
}

// MainPostgresTemporal is MainPostgres for a package whose tests also use the shared
// Temporal server: it stops that server too before exiting.
func MainPostgresTemporal(m *testing.M) {
	code := RunWithPostgres(m)
	StopTemporal()
	os.Exit(code)
}

// StopTemporal stops the shared server if it was started; call it at the end of TestMain.
func StopTemporal() {
	if temporalSrv != nil {
		temporalSrv.Stop()
	}
}

// TemporalClient returns a client of the shared server in its namespace, closed when
// the test ends.
func TemporalClient(t testing.TB) client.Client {
	t.Helper()
	c := Temporal(t).NewClientWithOptions(client.Options{})
	t.Cleanup(c.Close)
	return c
}

// TaskQueue returns a task queue name no other test of the binary uses.
func TaskQueue(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("test-%s-%d", name, queueSeq.Add(1))
}
