package temporalclient

import "testing"

func TestReachable(t *testing.T) {
	cases := []struct{ addr, panel, want string }{
		// Temporal beside the panel on loopback: reach it where the panel is.
		{"127.0.0.1:7233", "http://10.0.2.2:8080", "10.0.2.2:7233"},
		{"localhost:7233", "https://panel.example.com", "panel.example.com:7233"},
		{"[::1]:7233", "http://10.0.2.2:8080", "10.0.2.2:7233"},
		{"0.0.0.0:7233", "http://10.0.2.2:8080", "10.0.2.2:7233"},
		// A real address is used as it is.
		{"temporal.example.com:7233", "http://10.0.2.2:8080", "temporal.example.com:7233"},
		{"192.168.1.5:7233", "http://10.0.2.2:8080", "192.168.1.5:7233"},
		{"garbage", "http://10.0.2.2:8080", "garbage"},
	}
	for _, c := range cases {
		if got := Reachable(c.addr, c.panel); got != c.want {
			t.Errorf("Reachable(%q, %q) = %q, want %q", c.addr, c.panel, got, c.want)
		}
	}
}
