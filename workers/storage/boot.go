package storage

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage"
	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/bootview"
	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	agentmetrics "github.com/clusterducks/clusterducks/activities/storage/metrics"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/activities/storage/zfs"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// BootConfig is the agent's boot path: its iSCSI target and boot endpoint.
type BootConfig struct {
	// ISCSIListen is where the target listens; empty: the server's iSCSI IP at port 3260.
	ISCSIListen string
	// Portal is the host:port devices reach the target at; empty: ISCSIListen's, with the
	// server's iSCSI IP when it listens on all addresses.
	Portal string
	// BootListen is where the boot endpoint listens (default :8080, every agent the same port).
	BootListen string
	// CHAP makes every target require CHAP, with per-target secrets derived from the
	// server key (devices get theirs in their sanboot script).
	CHAP bool
	// MaxProvisions and MaxLogins are the server's admission bounds: new disks made at
	// once, and devices in their iSCSI login phase (0: the boot service's defaults).
	MaxProvisions int
	MaxLogins     int
	// UpAfter is the bound a sanbooted device's result is decided within: its session up
	// this long with reads continuing is up, a new request or a drop before it is failed;
	// UnknownAfter ends the watch of a boot nothing decided (unknown).
	UpAfter      time.Duration
	UnknownAfter time.Duration
}

// bootFlags declares the boot path's flags on the agent's flag set.
func bootFlags(fs *flag.FlagSet) *BootConfig {
	b := &BootConfig{}
	fs.StringVar(&b.ISCSIListen, "iscsi-listen", os.Getenv("CLUSTERDUCKS_ISCSI_LISTEN"), "iSCSI target listen address (default: the server's iSCSI IP, port 3260)")
	fs.StringVar(&b.Portal, "iscsi-portal", os.Getenv("CLUSTERDUCKS_ISCSI_PORTAL"), "host:port devices reach the target at (default: the listen address)")
	fs.StringVar(&b.BootListen, "boot-listen", cmp.Or(os.Getenv("CLUSTERDUCKS_BOOT_LISTEN"), ":8080"), "boot endpoint (boot.ipxe) listen address")
	fs.BoolVar(&b.CHAP, "iscsi-chap", os.Getenv("CLUSTERDUCKS_ISCSI_CHAP") == "1", "require CHAP on every target (per-target secrets derived from the server key; CLUSTERDUCKS_ISCSI_CHAP=1)")
	envInt := func(name string) int { n, _ := strconv.Atoi(os.Getenv(name)); return n }
	fs.IntVar(&b.MaxProvisions, "boot-max-provisions", envInt("CLUSTERDUCKS_BOOT_MAX_PROVISIONS"), "new disks this server makes at once; devices beyond are told to retry (default 32)")
	fs.IntVar(&b.MaxLogins, "boot-max-logins", envInt("CLUSTERDUCKS_BOOT_MAX_LOGINS"), "devices in their iSCSI login phase at once; devices beyond are told to retry (default 256)")
	envDuration := func(name string) time.Duration { d, _ := time.ParseDuration(os.Getenv(name)); return d }
	fs.DurationVar(&b.UpAfter, "boot-up-after", cmp.Or(envDuration("CLUSTERDUCKS_BOOT_UP_AFTER"), time.Minute),
		"a sanbooted device whose iSCSI session stays up this long with reads continuing counts as up; asking again or a dropped session before it, failed")
	fs.DurationVar(&b.UnknownAfter, "boot-unknown-after", cmp.Or(envDuration("CLUSTERDUCKS_BOOT_UNKNOWN_AFTER"), 10*time.Minute),
		"a boot nothing decided within this (no iSCSI login, an idle session) counts as unknown")
	return b
}

// temporalProvisioner provisions through the device entity workflow: update-with-start
// on device-<id>, one update id per provisioning request (wire.ProvisionUpdateID), so a
// repeated boot request joins the same work.
type temporalProvisioner struct {
	c client.Client
}

// healthWait bounds the check that Temporal answers before a provisioning is asked for.
const healthWait = 3 * time.Second

func (p *temporalProvisioner) Provision(ctx context.Context, r wire.ProvisionRequest) error {
	// With Temporal down the SDK would retry the update for as long as ctx lasts, and the
	// device would be told "please wait" all that time; said at once, a non-strict device
	// boots the clone it has (nothing was started, so its disk is untouched).
	hctx, cancel := context.WithTimeout(ctx, healthWait)
	_, err := p.c.CheckHealth(hctx, &client.CheckHealthRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("device %d: temporal: %w (%v)", r.DeviceID, wire.ErrUnreachable, err)
	}
	h, err := temporalclient.UpdateDevice(ctx, p.c, r.DeviceID, wire.UpdateProvision,
		wire.ProvisionUpdateID(r), r)
	if err != nil {
		return fmt.Errorf("device %d: %w", r.DeviceID, err)
	}
	var out wire.DeviceClone
	if err := h.Get(ctx, &out); err != nil {
		if activities.IsType(err, activities.TypeDeviceLocked) {
			return boot.ErrLocked
		}
		return err
	}
	return nil
}

// startBootOrWarn starts the boot path; when it cannot (no such address here, a port
// taken) the storage worker still runs and the agent says why: the ZFS operations do not
// depend on the boot path.
// The boot service is returned (nil when not started) for the panel's admission bounds.
func startBootOrWarn(ctx context.Context, cfg Config, panel, viewPanel *wire.Client, serverID uint, pool string, c client.Client, w worker.Worker, z *zfs.ZFS, log *slog.Logger) (func(), *boot.Service) {
	stop, svc, err := startBoot(ctx, cfg, panel, viewPanel, serverID, pool, c, w, z, log)
	if err != nil {
		log.Error("boot path not started: devices cannot netboot from this server", "err", err)
		return func() {}, nil
	}
	return stop, svc
}

// applyBounds sets the admission bounds the panel holds for this server on the boot
// service, except a bound the agent was started with (--boot-max-*), which it keeps.
func applyBounds(svc *boot.Service, bc *BootConfig, info *wire.ServerInfo) {
	if svc == nil || bc == nil {
		return
	}
	svc.SetBounds(cmp.Or(bc.MaxProvisions, info.MaxProvisions), cmp.Or(bc.MaxLogins, info.MaxLogins))
}

// startBoot starts the agent's iSCSI target and boot endpoint, exports again what the
// panel (or, when it is unreachable, the local cache) lists, and registers the boot
// path's activities on the storage worker. The returned stop ends them. The boot view
// watches the panel through viewPanel (the tunnel, where there is one).
func startBoot(ctx context.Context, cfg Config, panel, viewPanel *wire.Client, serverID uint, pool string, c client.Client, w worker.Worker, z *zfs.ZFS, log *slog.Logger) (func(), *boot.Service, error) {
	bc := cfg.Boot
	if bc == nil {
		bc = &BootConfig{BootListen: ":8080"}
	}
	// The server as the panel holds it: its iSCSI IP (unless given) and its admission
	// bounds, in force before the endpoint answers its first device.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	self, selfErr := panel.Server(sctx)
	cancel()
	listen := bc.ISCSIListen
	if listen == "" {
		if selfErr != nil {
			return nil, nil, fmt.Errorf("boot: the server's iSCSI IP: %w", selfErr)
		}
		listen = net.JoinHostPort(self.IP, "3260")
	}
	portal := bc.Portal
	if portal == "" {
		portal = listen
	}
	target := iscsi.NewServer(iscsi.Config{Logger: log})
	iln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, fmt.Errorf("boot: iSCSI listen %s: %w", listen, err)
	}
	if cfg.Metrics != nil {
		cfg.Metrics.WatchTarget(target)
	}
	go func() {
		if err := target.Serve(iln); err != nil && !errors.Is(err, iscsi.ErrServerClosed) {
			log.Error("iscsi target", "err", err)
		}
	}()
	cache, err := boot.OpenCache(filepath.Join(cfg.stateDir(), "boot-cache-"+strconv.FormatUint(uint64(serverID), 10)+".json"))
	if err != nil {
		iln.Close()
		return nil, nil, err
	}
	// The agent's own view of the network's boot state answers known devices without the
	// panel; it follows the panel's watch for as long as the agent runs.
	view, err := bootview.Open(bootview.Config{Panel: viewPanel, Logger: log,
		Path: filepath.Join(cfg.stateDir(), "bootview-"+strconv.FormatUint(uint64(serverID), 10)+".json")})
	if err != nil {
		iln.Close()
		return nil, nil, err
	}
	vctx, stopView := context.WithCancel(context.Background())
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		view.Run(vctx)
	}()
	disks := &storage.ZFSDisks{ZFS: z, Pool: pool}
	var chapKey []byte
	if bc.CHAP {
		if chapKey, err = chapSeed(cfg.stateDir(), cfg.Key); err != nil {
			stopView()
			iln.Close()
			return nil, nil, fmt.Errorf("iSCSI CHAP: %w", err)
		}
	}
	svc, err := boot.NewService(boot.Config{ServerID: serverID, Portal: portal, BootPort: portOf(bc.BootListen),
		Panel: panel, Provision: &temporalProvisioner{c: c}, Disks: disks, Target: target, Cache: cache, Logger: log,
		CHAPKey: chapKey, Observer: bootObserver(cfg), View: view, MaxProvisions: bc.MaxProvisions, MaxLogins: bc.MaxLogins,
		Outcomes: boot.OutcomeBounds{UpAfter: bc.UpAfter, UnknownAfter: bc.UnknownAfter}})
	if err != nil {
		stopView()
		iln.Close()
		return nil, nil, err
	}
	if selfErr == nil {
		applyBounds(svc, bc, self) // otherwise Serve's follow does, once the panel answers
	}
	if cfg.Metrics != nil {
		cfg.Metrics.WatchBoot(func() agentmetrics.BootState { return bootState(svc, view) })
	}
	w.RegisterActivity(&storage.Devices{ZFS: z, Exports: svc})
	n, err := svc.Restore(ctx)
	log.Info("boot: targets exported again", "n", n, "err", err)
	mux := http.NewServeMux() // what the endpoint does not answer itself (it answers /boot.ipxe)
	mux.Handle("/booted", svc.CheckIn())
	if cfg.Metrics != nil {
		// Until the agent API (through the tunnel) serves them, the metrics are on the boot listener.
		mux.Handle("/metrics", cfg.Metrics.Registry.Handler())
	}
	hs := svc.Endpoint(mux)
	hln, err := net.Listen("tcp", bc.BootListen)
	if err != nil {
		svc.Close()
		stopView()
		iln.Close()
		return nil, nil, fmt.Errorf("boot: listen %s: %w", bc.BootListen, err)
	}
	go hs.Serve(hln) //nolint:errcheck
	log.Info("boot path ready", "iscsi", listen, "portal", portal, "boot", hln.Addr().String(), "chap", bc.CHAP)
	return func() {
		hs.Close()
		svc.Close()
		stopView()
		<-viewDone
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		target.Shutdown(sctx) //nolint:errcheck
	}, svc, nil
}

// bootState is what the agent's metrics show of the boot path's admission and view.
func bootState(svc *boot.Service, view *bootview.View) agentmetrics.BootState {
	a, v := svc.Admission(), view.Stats()
	return agentmetrics.BootState{Provisions: a.Provisions, MaxProvisions: a.MaxProvisions, Logins: a.Logins, MaxLogins: a.MaxLogins,
		Refused: a.Refused, ReportsWaiting: svc.ReportsWaiting(), ViewRevision: v.Revision, ViewDevices: v.Devices, ViewAge: v.Age, ViewLease: v.Lease,
		ViewFullLoads: v.FullLoads, ViewDeltas: v.Deltas, ViewFailures: v.Failures, ViewAnswered: v.Answered, ViewPassed: v.Passed}
}

// bootObserver is the boot service's metrics, nil when the agent has none (a typed nil
// pointer would not compare equal to a nil interface).
func bootObserver(cfg Config) boot.Observer {
	if cfg.Metrics == nil {
		return nil
	}
	return cfg.Metrics.Boot
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 8080
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 8080
	}
	return n
}
