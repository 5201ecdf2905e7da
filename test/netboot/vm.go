// Package netboot boots diskless device VMs under qemu (TCG) through iPXE's PXE ROM and
// the agent's boot endpoint, and reads which image each one booted. The images carry the
// shared boot sector fixture (test/fixtures/bootsector): LBA 0 boots, LBA 1 holds a marker
// text the boot sector prints to COM1 before it ends qemu through isa-debug-exit. The
// device VM itself is the storage lab's (lab.DeviceVM), the one `task lab` prints.
package netboot

import (
	"context"
	"fmt"
	"time"

	"github.com/clusterducks/clusterducks/test/lab"
)

// Packages are the Debian packages a device VM needs.
var Packages = lab.DevicePackages

// MakeDisk writes a disk image of size bytes (at least 32 MiB, sparse: iPXE derives a CHS geometry and a smaller disk has no cylinder) that boots and prints marker.
func MakeDisk(path, marker string, size int64) error {
	return lab.MakeBootDisk(path, marker, size)
}

// Device is one diskless machine.
type Device struct {
	MAC  string // 52:54:00:..
	UUID string // its SMBIOS UUID: iPXE's initiator name is derived from it
}

// DeviceN returns a distinct device for index i.
func DeviceN(i int) Device {
	return Device{
		MAC:  fmt.Sprintf("52:54:00:cd:%02x:%02x", (i>>8)&0xff, i&0xff),
		UUID: fmt.Sprintf("c1d0c1d0-0000-4000-8000-%012x", i),
	}
}

// Result is how a device VM ended.
type Result = lab.DeviceResult

// Boot runs one device VM that PXE-boots with bootURL as its DHCP boot file, until it
// ends or timeout passes (then it is killed, by pid).
func Boot(ctx context.Context, bootURL string, d Device, timeout time.Duration) (*Result, error) {
	return DeviceVM(bootURL, d).Run(ctx, timeout)
}

// DeviceVM is device d's VM, PXE-booting with bootURL as its DHCP boot file. 64 MiB is
// all iPXE and the boot sector need; the tests run many devices at once.
func DeviceVM(bootURL string, d Device) lab.DeviceVM {
	return lab.DeviceVM{BootURL: bootURL, MAC: d.MAC, UUID: d.UUID, MemoryMB: 64}
}

func tail(s string) string { return lab.ConsoleTail(s) }
