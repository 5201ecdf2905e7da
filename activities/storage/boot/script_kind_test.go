package boot

import (
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

func TestScriptKind(t *testing.T) {
	san := SANTarget{Portal: "10.0.0.1:3260", LUN: 0, IQN: "iqn.2024-01.com.clusterducks:d1"}
	for _, tc := range []struct {
		script, want string
	}{
		{ChainScript(), "chain"},
		{SanbootScript("banner", san, time.Second), "sanboot"},
		{RebootScript("why", time.Second), "reboot"},
		{RetryScript("why", time.Second), "retry"},
		{RedirectScript("why", "http://10.0.0.2:8080/boot.ipxe"), "redirect"},
		{MenuScript("m", []wire.MenuEntry{{Label: "a", Type: wire.MenuLocal}}, time.Second), "menu"},
		{MenuScript("m", nil, time.Second), "menu"},
		{"#!ipxe\nshell\n", "other"},
	} {
		if got := ScriptKind(tc.script); got != tc.want {
			t.Errorf("ScriptKind(%q) = %q, want %q", tc.script, got, tc.want)
		}
	}
}
