package storage

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/coreos/go-systemd/v22/unit"
)

// A container runs as systemd service cd-container-<id>.service on its server: a unit
// file under UnitDir whose ExecStart is systemd-nspawn on the clone's mountpoint, with
// the container's limits as the unit's resource-control properties. systemd is driven
// through its D-Bus API (go-systemd); only the journal is read with journalctl (the
// agent is built without cgo, which go-systemd's sdjournal needs).

// DefaultUnitDir is where container units are written.
const DefaultUnitDir = "/etc/systemd/system"

// ContainerUnit is the systemd unit name of container id.
func ContainerUnit(id uint) string { return fmt.Sprintf("cd-container-%d.service", id) }

// ContainerInput is what a container is made from and runs with.
type ContainerInput struct {
	Pool            string
	ContainerID     uint
	CTemplateID     uint
	Version         int
	MemoryMB        int
	CPUQuotaPercent int
	TasksMax        int
	DiskQuotaGiB    int
	Autostart       bool
	Command         string // run by /bin/sh -c; "" boots the container's own init
}

// ContainerResult names the clone and the unit.
type ContainerResult struct {
	Dataset string
	Unit    string
}

func (a *Activities) unitDir() string {
	if a.UnitDir != "" {
		return a.UnitDir
	}
	return DefaultUnitDir
}

// systemdQuote quotes one ExecStart argument for systemd: double quotes with backslash
// escapes, and specifiers (%) and variables ($) doubled so they stay literal.
func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	return `"` + r.Replace(s) + `"`
}

// containerUnitText is the unit file of a container rooted at dir, with its network
// interface on bridge ("": the server's network, shared).
func containerUnitText(in ContainerInput, dir, bridge string) string {
	args := []string{nspawnCommand, "--quiet", "--keep-unit", "--register=no",
		"-D", systemdQuote(dir), fmt.Sprintf("--machine=cd-%d", in.ContainerID)}
	if bridge != "" {
		// A veth pair: host0 in the container, its peer enslaved to the bridge, so the
		// container is on the same segment as the server's VMs (DHCP from the site's network).
		args = append(args, "--network-bridge="+bridge)
	}
	if in.Command == "" {
		args = append(args, "-b")
	} else {
		args = append(args, "--console=pipe", "/bin/sh", "-c", systemdQuote(in.Command))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the clusterducks agent: container %d, a clone of ctemplate %d v%d.\n", in.ContainerID, in.CTemplateID, in.Version)
	fmt.Fprintf(&b, "[Unit]\nDescription=clusterducks container %d\nAfter=zfs-mount.service network.target\nRequiresMountsFor=%s\n", in.ContainerID, dir)
	if bridge != "" {
		// The bridge is a network device: start once it exists, and stop with it.
		dev := unit.UnitNamePathEscape("/sys/subsystem/net/devices/"+bridge) + ".device"
		fmt.Fprintf(&b, "BindsTo=%s\nAfter=%s\n", dev, dev)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "[Service]\nExecStart=%s\nKillMode=mixed\nDelegate=yes\n", strings.Join(args, " "))
	if in.MemoryMB > 0 {
		fmt.Fprintf(&b, "MemoryMax=%dM\n", in.MemoryMB)
	}
	if in.CPUQuotaPercent > 0 {
		fmt.Fprintf(&b, "CPUQuota=%d%%\n", in.CPUQuotaPercent)
	}
	if in.TasksMax > 0 {
		fmt.Fprintf(&b, "TasksMax=%d\n", in.TasksMax)
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

// withSystemd runs fn with a connection to the system's systemd.
func withSystemd(ctx context.Context, fn func(*sd.Conn) error) error {
	c, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("systemd D-Bus: %w", err)
	}
	defer c.Close()
	return fn(c)
}

// waitJob waits for a job systemd queued (start, stop, restart) to end; "done" is success.
func waitJob(ctx context.Context, what string, ch chan string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s: job %s", what, res)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nspawnCommand runs every container (its unit's ExecStart).
var nspawnCommand = "/usr/bin/systemd-nspawn"

// CreateContainer clones the ctemplate's version into <pool>/iscsi/containers/<id> (with
// the disk quota as its refquota), writes the container's unit, enables it for autostart
// (or not) and starts it. Safe to repeat: an existing clone of the same snapshot and the
// same unit are kept; starting a running unit does nothing.
func (a *Activities) CreateContainer(ctx context.Context, in ContainerInput) (*ContainerResult, error) {
	if err := needCommand(nspawnCommand, "systemd-container"); err != nil {
		return nil, activities.Wrap(err)
	}
	ds := ContainerDataset(in.Pool, in.ContainerID)
	res := &ContainerResult{Dataset: ds, Unit: ContainerUnit(in.ContainerID)}
	err := a.alive(ctx, func() error {
		origin := CTemplateDataset(in.Pool, in.CTemplateID) + "@" + VersionSnapshot(in.Version)
		if _, err := a.ZFS.Clone(origin, ds); err != nil {
			return err
		}
		quota := "none"
		if in.DiskQuotaGiB > 0 {
			quota = strconv.FormatUint(uint64(in.DiskQuotaGiB)*GiB, 10)
		}
		if err := a.ZFS.SetProperty(ds, "refquota", quota); err != nil {
			return err
		}
		dir, err := a.ZFS.Property(ctx, ds, "mountpoint")
		if err != nil {
			return err
		}
		if a.Bridge != "" {
			if _, err := net.InterfaceByName(a.Bridge); err != nil {
				return fmt.Errorf("the bridge %q (install.sh -n) is missing on this server: %w", a.Bridge, err)
			}
		}
		path := filepath.Join(a.unitDir(), res.Unit)
		if err := os.WriteFile(path, []byte(containerUnitText(in, dir, a.Bridge)), 0o644); err != nil {
			return fmt.Errorf("unit %s: %w", path, err)
		}
		return withSystemd(ctx, func(c *sd.Conn) error {
			if err := c.ReloadContext(ctx); err != nil {
				return fmt.Errorf("daemon-reload: %w", err)
			}
			if in.Autostart {
				if _, _, err := c.EnableUnitFilesContext(ctx, []string{res.Unit}, false, true); err != nil {
					return fmt.Errorf("enable %s: %w", res.Unit, err)
				}
			} else if _, err := c.DisableUnitFilesContext(ctx, []string{res.Unit}, false); err != nil {
				return fmt.Errorf("disable %s: %w", res.Unit, err)
			}
			ch := make(chan string, 1)
			_, err := c.StartUnitContext(ctx, res.Unit, "replace", ch)
			return waitJob(ctx, "start "+res.Unit, ch, err)
		})
	})
	return res, err
}

// ContainerActionInput asks for start, stop, restart or kill of container ContainerID.
type ContainerActionInput struct {
	ContainerID uint
	Action      string
}

// ContainerAction starts, stops, restarts or kills (SIGKILL to every process of the
// unit) a container's machine. Each is safe to repeat.
func (a *Activities) ContainerAction(ctx context.Context, in ContainerActionInput) (*wire.ContainerStatus, error) {
	unit := ContainerUnit(in.ContainerID)
	err := withSystemd(ctx, func(c *sd.Conn) error {
		ch := make(chan string, 1)
		switch in.Action {
		case "start":
			_, err := c.StartUnitContext(ctx, unit, "replace", ch)
			return waitJob(ctx, "start "+unit, ch, err)
		case "stop":
			_, err := c.StopUnitContext(ctx, unit, "replace", ch)
			return waitJob(ctx, "stop "+unit, ch, err)
		case "restart":
			_, err := c.RestartUnitContext(ctx, unit, "replace", ch)
			return waitJob(ctx, "restart "+unit, ch, err)
		case "kill":
			return c.KillUnitWithTarget(ctx, unit, sd.All, int32(syscall.SIGKILL))
		}
		return fmt.Errorf("unknown container action %q", in.Action)
	})
	if err != nil {
		return nil, err
	}
	return ContainerState(ctx, in.ContainerID, 0)
}

// RemoveContainerInput names the container whose machine and unit go.
type RemoveContainerInput struct {
	ContainerID uint
}

// RemoveContainer stops a container's machine, disables and removes its unit; its clone
// is left for the erator (Trash). A unit that is gone already is success.
func (a *Activities) RemoveContainer(ctx context.Context, in RemoveContainerInput) (*ContainerResult, error) {
	unit := ContainerUnit(in.ContainerID)
	path := filepath.Join(a.unitDir(), unit)
	err := withSystemd(ctx, func(c *sd.Conn) error {
		ch := make(chan string, 1)
		if _, err := c.StopUnitContext(ctx, unit, "replace", ch); err == nil {
			if err := waitJob(ctx, "stop "+unit, ch, nil); err != nil {
				return err
			}
		} else if !strings.Contains(err.Error(), "not loaded") {
			return fmt.Errorf("stop %s: %w", unit, err)
		}
		if _, err := os.Stat(path); err == nil {
			if _, err := c.DisableUnitFilesContext(ctx, []string{unit}, false); err != nil {
				return fmt.Errorf("disable %s: %w", unit, err)
			}
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
		_ = c.ResetFailedUnitContext(ctx, unit) // a unit that never failed has nothing to reset
		return c.ReloadContext(ctx)
	})
	return &ContainerResult{Unit: unit}, err
}

// ContainerState reads a container's unit through systemd and the last lines of its
// journal (journalctl: the agent has no cgo for sdjournal).
func ContainerState(ctx context.Context, id uint, lines int) (*wire.ContainerStatus, error) {
	unit := ContainerUnit(id)
	st := &wire.ContainerStatus{Unit: unit, Journal: []string{}}
	err := withSystemd(ctx, func(c *sd.Conn) error {
		u, err := c.GetUnitPropertiesContext(ctx, unit)
		if err != nil {
			return err
		}
		st.LoadState, _ = u["LoadState"].(string)
		st.ActiveState, _ = u["ActiveState"].(string)
		st.SubState, _ = u["SubState"].(string)
		st.Enabled, _ = u["UnitFileState"].(string)
		if us, ok := u["ActiveEnterTimestamp"].(uint64); ok && us > 0 && st.ActiveState == "active" {
			st.Since = time.UnixMicro(int64(us)).UTC().Format(time.RFC3339)
		}
		s, err := c.GetUnitTypePropertiesContext(ctx, unit, "Service")
		if err != nil {
			return err
		}
		st.MainPID, _ = s["MainPID"].(uint32)
		st.MemoryBytes = unset(s["MemoryCurrent"])
		st.MemoryMax = unset(s["MemoryMax"])
		st.CPUNanos = unset(s["CPUUsageNSec"])
		st.CPUQuotaUS = unset(s["CPUQuotaPerSecUSec"])
		st.Tasks = unset(s["TasksCurrent"])
		st.TasksMax = unset(s["TasksMax"])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", unit, err)
	}
	if lines > 0 {
		jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(jctx, "journalctl", "--no-pager", "-q", "-u", unit, "-n", strconv.Itoa(min(lines, 1000)), "-o", "cat").Output()
		if err != nil {
			return nil, fmt.Errorf("journal of %s: %w", unit, err)
		}
		for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			if l != "" {
				st.Journal = append(st.Journal, l)
			}
		}
	}
	return st, nil
}

// unset is a systemd uint64 property, with its "infinity"/"not known" (max uint64) as 0.
func unset(v any) uint64 {
	n, _ := v.(uint64)
	if n == ^uint64(0) {
		return 0
	}
	return n
}

// ContainerUnits lists the container units whose files are in unitDir ("" is
// DefaultUnitDir) with their state as systemd has it now; the agent's stats report
// carries them to the panel's health check. Units are asked for by name, so a disabled
// unit that systemd has unloaded is loaded and reported too.
func ContainerUnits(ctx context.Context, unitDir string) ([]wire.ContainerUnit, error) {
	if unitDir == "" {
		unitDir = DefaultUnitDir
	}
	files, err := filepath.Glob(filepath.Join(unitDir, "cd-container-*.service"))
	if err != nil {
		return nil, err
	}
	ids := map[string]uint{}
	var names []string
	for _, f := range files {
		name := filepath.Base(f)
		id, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "cd-container-"), ".service"), 10, 32)
		if err != nil || id == 0 {
			continue // not one of ours
		}
		ids[name] = uint(id)
		names = append(names, name)
	}
	out := []wire.ContainerUnit{}
	if len(names) == 0 {
		return out, nil
	}
	err = withSystemd(ctx, func(c *sd.Conn) error {
		units, err := c.ListUnitsByNamesContext(ctx, names)
		if err != nil {
			return fmt.Errorf("list container units: %w", err)
		}
		for _, u := range units {
			id, ok := ids[u.Name]
			if !ok {
				continue
			}
			cu := wire.ContainerUnit{ID: id, ActiveState: u.ActiveState, SubState: u.SubState}
			if p, err := c.GetUnitTypePropertyContext(ctx, u.Name, "Service", "Result"); err == nil {
				cu.Result, _ = p.Value.Value().(string)
			}
			out = append(out, cu)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
