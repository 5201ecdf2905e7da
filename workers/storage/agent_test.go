package storage

import "testing"

// TestCheckBridge: --bridge (install.sh -n, CLUSTERDUCKS_BRIDGE) is an interface name,
// since it is written into container units and nspawn's command line.
func TestCheckBridge(t *testing.T) {
	for name, ok := range map[string]bool{
		"": true, "br0": true, "br-lan": true, "vmbr0.100": true, "abcdefghijklmno": true,
		"abcdefghijklmnop": false, "br 0": false, "br/0": false, "br:0": false, "..": false, `br"0`: false, "br%i": false,
	} {
		if err := checkBridge(name); (err == nil) != ok {
			t.Errorf("checkBridge(%q) = %v, want ok %v", name, err, ok)
		}
	}
}
