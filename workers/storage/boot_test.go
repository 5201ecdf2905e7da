package storage

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"go.temporal.io/sdk/client"
)

// With Temporal unreachable a provisioning is refused at once as ErrUnreachable (so a
// non-strict device boots the clone it has), not retried until the request's deadline.
func TestProvisionTemporalUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.NewLazyClient(client.Options{HostPort: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = (&temporalProvisioner{c: c}).Provision(ctx, wire.ProvisionRequest{DeviceID: 7, GroupID: 3, ServerID: 1, Version: 2})
	if !errors.Is(err, wire.ErrUnreachable) {
		t.Fatalf("provision with Temporal down: %v, want ErrUnreachable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the provisioning waited for the request's deadline")
	}
}
