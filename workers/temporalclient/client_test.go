package temporalclient

import (
	"testing"

	"go.temporal.io/sdk/client"
)

// An agent's client (SmallCalls) sends its small calls uncompressed and with fixed
// flow-control windows; any other keeps the SDK's defaults (gzip, probed windows).
func TestSmallCallsOptions(t *testing.T) {
	o, err := Config{Address: "127.0.0.1:7233", SmallCalls: true}.Options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := o.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionNone); !ok {
		t.Errorf("compression %T, want none", o.ConnectionOptions.GrpcCompression)
	}
	if n := len(o.ConnectionOptions.DialOptions); n != 2 {
		t.Errorf("%d dial options, want the two windows", n)
	}
	o, err = Config{Address: "127.0.0.1:7233"}.Options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.ConnectionOptions.GrpcCompression != nil || len(o.ConnectionOptions.DialOptions) != 0 {
		t.Errorf("the panel's client changed the SDK's defaults: %+v", o.ConnectionOptions)
	}
}
