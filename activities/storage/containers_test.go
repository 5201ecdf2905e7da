package storage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterducks/clusterducks/activities"
	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

func TestContainerUnitText(t *testing.T) {
	unit := containerUnitText(ContainerInput{ContainerID: 7, CTemplateID: 2, Version: 3, MemoryMB: 64, CPUQuotaPercent: 150, TasksMax: 32,
		Command: `echo "50%" $HOME \ok`}, "/tank/iscsi/containers/7", "")
	for _, want := range []string{
		`ExecStart=/usr/bin/systemd-nspawn --quiet --keep-unit --register=no -D "/tank/iscsi/containers/7" --machine=cd-7 --console=pipe /bin/sh -c "echo \"50%%\" $$HOME \\ok"`,
		"MemoryMax=64M\n", "CPUQuota=150%\n", "TasksMax=32\n", "RequiresMountsFor=/tank/iscsi/containers/7\n", "WantedBy=multi-user.target\n", "Delegate=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	boot := containerUnitText(ContainerInput{ContainerID: 8}, "/d", "")
	if !strings.Contains(boot, "--machine=cd-8 -b\n") || strings.Contains(boot, "MemoryMax") || strings.Contains(boot, "CPUQuota") || strings.Contains(boot, "--network") || strings.Contains(boot, "BindsTo") {
		t.Errorf("a booted container without limits nor bridge:\n%s", boot)
	}
	// On the server's bridge (install.sh -n br-lan): a veth on it, and the unit bound to
	// the bridge's device unit (its name escaped as systemd spells it).
	bridged := containerUnitText(ContainerInput{ContainerID: 9, Command: "httpd -f"}, "/d", "br-lan")
	for _, want := range []string{
		`--machine=cd-9 --network-bridge=br-lan --console=pipe /bin/sh -c "httpd -f"`,
		"BindsTo=sys-subsystem-net-devices-br\\x2dlan.device\n", "After=sys-subsystem-net-devices-br\\x2dlan.device\n",
	} {
		if !strings.Contains(bridged, want) {
			t.Errorf("bridged unit lacks %q:\n%s", want, bridged)
		}
	}
}

func tarOf(t *testing.T, files map[string]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body)) //nolint:errcheck
	}
	tw.Close()
	// Trailing bytes after the end marker still count for the checksum.
	b.Write(make([]byte, 4096))
	return b.Bytes()
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestUnpack: the tarball is unpacked while its SHA-256 is computed over every byte sent
// (tar stops at its end marker; the rest is read too); a gzip body is unpacked as well; a
// wrong checksum is ErrChecksum, a body over the limit ErrTooLarge.
func TestUnpack(t *testing.T) {
	plain := tarOf(t, map[string]string{"etc/os-release": "ID=test\n"})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain) //nolint:errcheck
	zw.Close()
	for _, c := range []struct {
		name  string
		body  []byte
		sum   string
		limit int64
		want  error
	}{
		{"tar", plain, sum(plain), 1 << 20, nil},
		{"tar.gz", gz.Bytes(), sum(gz.Bytes()), 1 << 20, nil},
		{"checksum mismatch", plain, sum(append([]byte{1}, plain...)), 1 << 20, activities.ErrChecksum},
		{"over the limit", plain, sum(plain), 1000, activities.ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var res wire.RootFSResult
			err := unpack(context.Background(), dir, bytes.NewReader(c.body), RootFSInput{SHA256: c.sum, Limit: c.limit}, &res)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Bytes != int64(len(c.body)) || res.SHA256 != c.sum {
				t.Errorf("result %+v, want %d bytes", res, len(c.body))
			}
			if b, err := os.ReadFile(filepath.Join(dir, "etc/os-release")); err != nil || string(b) != "ID=test\n" {
				t.Errorf("unpacked os-release: %q %v", b, err)
			}
		})
	}
}
