package chaos

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sort"
	"time"

	"go.temporal.io/sdk/client"
)

// schedules lists the namespace's schedules on frontend (TLS with ca and name when ca is
// set) and, for each, the scheduled times of its recent runs.
func schedules(ctx context.Context, frontend, ca, name string) (map[string][]time.Time, error) {
	o := client.Options{HostPort: frontend, Namespace: "default"}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(b)
		o.ConnectionOptions.TLS = &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}
	}
	c, err := client.DialContext(ctx, o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string][]time.Time{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		d, err := c.ScheduleClient().GetHandle(ctx, e.ID).Describe(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe schedule %s: %w", e.ID, err)
		}
		runs := []time.Time{}
		for _, a := range d.Info.RecentActions {
			runs = append(runs, a.ScheduleTime)
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i].Before(runs[j]) })
		out[e.ID] = append(out[e.ID], runs...)
		if _, seen := out[e.ID+"#count"]; seen {
			return nil, fmt.Errorf("schedule %s listed twice", e.ID)
		}
		out[e.ID+"#count"] = nil
	}
	return out, nil
}
