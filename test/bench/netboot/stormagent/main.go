// Command stormagent is an agent's boot side with its view of the network, in a process
// of its own as on a storage server, for BenchmarkBootViewStorm: with the panel in the
// benchmark's process, the panel's work and garbage (it takes every storm's reports)
// would be counted as the agent's.
//
// It serves the devices' disks under -disks (boot.FileDisks), prints "ready <boot URL>"
// once its view holds -devices devices, then answers one line per line on stdin:
// "waiting" (the boot reports the panel has not taken yet) and "panel-boots" (the boot
// queries it sent to the panel). It stops when stdin ends. The server's key is
// $CD_AGENT_KEY.
//
// With -answer constant the boot URL it prints is the floor of the storm instead: the
// same process (view, target, disks) and the same HTTP server, but every GET /boot.ipxe
// is answered with one fixed sanboot script of a device's size, read from no view and
// exporting nothing. What a storm costs there is HTTP and loopback TCP on this machine.
//
//	stormagent -panel http://127.0.0.1:8080 -server 1 -ip 10.0.2.2 -disks DIR -devices 5000 -max-logins 1000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clusterducks/clusterducks/activities/storage/boot"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	bootviewtest "github.com/clusterducks/clusterducks/test/bootview"
)

func main() {
	panelURL := flag.String("panel", "", "the panel's URL")
	server := flag.Uint("server", 0, "this server's id")
	ip := flag.String("ip", "", "this server's IP as devices reach it")
	disks := flag.String("disks", "", "the root of the devices' disks (boot.FileDisks)")
	devices := flag.Int("devices", 0, "devices the view must hold before ready")
	maxLogins := flag.Int("max-logins", 0, "the login admission bound (0: the default)")
	answer := flag.String("answer", "view", "view: the agent's own answers; constant: the floor (one fixed script)")
	flag.Parse()
	if *answer != "view" && *answer != "constant" {
		fmt.Fprintf(os.Stderr, "stormagent: -answer %q: want view or constant\n", *answer)
		os.Exit(2)
	}
	if err := run(*panelURL, *server, *ip, *disks, *devices, *maxLogins, *answer == "constant"); err != nil {
		fmt.Fprintln(os.Stderr, "stormagent:", err)
		os.Exit(1)
	}
}

func run(panelURL string, server uint, ip, root string, devices, maxLogins int, constant bool) error {
	disks, err := boot.NewFileDisks(root)
	if err != nil {
		return err
	}
	a, err := bootviewtest.Launch(bootviewtest.PanelRef{URL: panelURL, Key: os.Getenv("CD_AGENT_KEY"), ServerID: server, ServerIP: ip},
		bootviewtest.Options{Disks: disks, Config: func(c *boot.Config) {
			if maxLogins > 0 {
				c.MaxLogins = maxLogins
			}
		}})
	if err != nil {
		return err
	}
	defer a.Stop()
	if err := a.WaitDevices(devices, 2*time.Minute); err != nil {
		return err
	}
	url := a.URL
	if constant {
		if url, err = serveConstant(boot.SanbootScript("clusterducks: device 1000 boots group 1 v1 from server 1",
			boot.SANTarget{Portal: a.ISCSI, IQN: wire.DeviceIQN(1, 1000)}, time.Second)); err != nil {
			return err
		}
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready", url)
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "waiting":
			fmt.Fprintln(out, "waiting", a.Svc.ReportsWaiting())
		case "panel-boots":
			fmt.Fprintln(out, "panel-boots", a.Panel.Count(wire.PathBoot))
		default:
			fmt.Fprintf(out, "unknown %q\n", in.Text())
		}
		out.Flush()
	}
	return nil
}

// serveConstant answers GET /boot.ipxe with script on a loopback port, as the boot
// endpoint's fasthttp server does (the same settings, headers and query parsing), and
// returns its URL. It copies boot.Endpoint's settings rather than sharing them (the
// product exports no test hook for a floor): a change there is to be made here too.
func serveConstant(script string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &fasthttp.Server{
		Handler: func(c *fasthttp.RequestCtx) {
			if string(c.Path()) != "/boot.ipxe" || (!c.IsGet() && !c.IsHead()) {
				c.Error("not found", fasthttp.StatusNotFound)
				return
			}
			c.SetContentType("text/plain; charset=utf-8")
			c.Response.Header.Set("Cache-Control", "no-store")
			q := c.QueryArgs()
			_, _ = q.Peek("mac"), q.Peek("uuid")
			c.SetBodyString(script)
		},
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           time.Minute,
		MaxRequestBodySize:    64 << 10,
		NoDefaultServerHeader: true,
	}
	go srv.Serve(ln) //nolint:errcheck // ends with the process
	return "http://" + ln.Addr().String() + "/boot.ipxe", nil
}
