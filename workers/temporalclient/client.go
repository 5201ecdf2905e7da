// Package temporalclient reads the Temporal connection settings of a process from its
// environment (or from what the panel hands an agent) and dials the Temporal frontend.
package temporalclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/clusterducks/clusterducks/activities/metrics"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/grpc"
)

// Config is where Temporal is and how to reach it.
type Config struct {
	Address    string `json:"address"`   // host:port of the frontend
	Namespace  string `json:"namespace"` // default "default"
	TLS        bool   `json:"tls"`
	ServerName string `json:"server_name,omitempty"` // TLS server name, when it differs from the host
	CAPEM      string `json:"ca_pem,omitempty"`      // CA that signed the frontend's certificate
	// Client certificate (mTLS); files, read at dial time. Never sent to agents.
	CertFile string `json:"-"`
	KeyFile  string `json:"-"`
	// Metrics, when set, receives the SDK's metrics and the workflow outcomes of the
	// workers made from the client. Never sent to agents.
	Metrics *metrics.Registry `json:"-"`
	// SmallCalls: the client's calls carry small messages (an agent's: a poll, an
	// activity's ids in and a guid or a listing out), so they go uncompressed and with
	// fixed HTTP/2 flow-control windows. gzip's tables and the window probe (a PING the
	// client writes after reading a response) cost a storage server more CPU per call than
	// they save on messages of a few hundred bytes. The panel's client keeps the SDK's
	// defaults (its workflow histories can be large).
	SmallCalls bool `json:"-"`
}

// smallCallsWindow is SmallCalls' HTTP/2 flow-control window, per stream and per
// connection: far above any message of an agent's, so no window update is ever waited for.
const smallCallsWindow = 4 << 20

// FromWire is the Temporal endpoint the panel handed an agent at registration.
func FromWire(t wire.Temporal) Config {
	return Config{Address: t.Address, Namespace: t.Namespace, TLS: t.TLS, ServerName: t.ServerName, CAPEM: t.CAPEM}
}

// Wire is the endpoint as the panel hands it to agents: never the client certificate.
func (c Config) Wire() wire.Temporal {
	return wire.Temporal{Address: c.Address, Namespace: c.Namespace, TLS: c.TLS, ServerName: c.ServerName, CAPEM: c.CAPEM}
}

// FromEnv reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the TLS settings
// TEMPORAL_TLS_CA (file), TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY (files, mTLS) and
// TEMPORAL_TLS_SERVER_NAME. TLS is on when any TLS setting is given.
func FromEnv() (Config, error) {
	c := Config{
		Address:    os.Getenv("TEMPORAL_ADDRESS"),
		Namespace:  os.Getenv("TEMPORAL_NAMESPACE"),
		ServerName: os.Getenv("TEMPORAL_TLS_SERVER_NAME"),
		CertFile:   os.Getenv("TEMPORAL_TLS_CERT"),
		KeyFile:    os.Getenv("TEMPORAL_TLS_KEY"),
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if ca := os.Getenv("TEMPORAL_TLS_CA"); ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return c, fmt.Errorf("TEMPORAL_TLS_CA: %w", err)
		}
		c.CAPEM = string(b)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return c, errors.New("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together")
	}
	c.TLS = c.CAPEM != "" || c.CertFile != "" || c.ServerName != ""
	return c, nil
}

// Options returns the SDK client options for c.
func (c Config) Options(log *slog.Logger) (client.Options, error) {
	o := client.Options{HostPort: c.Address, Namespace: c.Namespace}
	c.Metrics.ClientOptions(&o)
	if c.SmallCalls {
		o.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
		// A window set by hand turns grpc-go's bandwidth-delay probing off.
		o.ConnectionOptions.DialOptions = append(o.ConnectionOptions.DialOptions,
			grpc.WithInitialWindowSize(smallCallsWindow), grpc.WithInitialConnWindowSize(smallCallsWindow))
	}
	if log != nil {
		o.Logger = sdklog.NewStructuredLogger(log)
	}
	if !c.TLS {
		return o, nil
	}
	tc := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(c.CAPEM)) {
			return o, errors.New("temporal: the CA holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return o, fmt.Errorf("temporal client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	o.ConnectionOptions.TLS = tc
	return o, nil
}

// Dial connects to Temporal, retrying for up to wait (the frontend may still be starting).
func (c Config) Dial(log *slog.Logger, wait time.Duration) (client.Client, error) {
	if c.Address == "" {
		return nil, errors.New("no Temporal address")
	}
	o, err := c.Options(log)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		cl, err := client.Dial(o)
		if err == nil {
			return cl, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("temporal %s: %w", c.Address, err)
		}
		time.Sleep(time.Second)
	}
}

// Reachable rewrites a loopback address (Temporal's, a tunnel's) to the panel's host: a panel that runs
// Temporal or a tunnel beside itself on loopback means "where the panel is" (as agents in VMs see it).
func Reachable(address, panelURL string) string {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return address
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !(ip.IsLoopback() || ip.IsUnspecified())) {
		return address
	}
	u, err := url.Parse(panelURL)
	if err != nil || u.Hostname() == "" {
		return address
	}
	return net.JoinHostPort(u.Hostname(), port)
}
