package temporalite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// namespaceRetention is how long closed workflows stay visible in the Web UI.
const namespaceRetention = 7 * 24 * time.Hour

// registerNamespace registers namespace on the frontend at address unless it exists,
// retrying while the freshly started server is not ready to serve it yet.
func registerNamespace(address, namespace string, t *TLS, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tc, err := t.clientTLS()
	if err != nil {
		return err
	}
	nc, err := client.NewNamespaceClient(client.Options{HostPort: address, ConnectionOptions: client.ConnectionOptions{TLS: tc}})
	if err != nil {
		return fmt.Errorf("temporal namespace client: %w", err)
	}
	defer nc.Close()
	for {
		err := nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(namespaceRetention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err == nil || errors.As(err, &exists) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("register temporal namespace %q: %w", namespace, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
