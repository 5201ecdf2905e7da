package boot

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
)

// The iPXE scripts the agent answers with. Every script starts with "#!ipxe"; text shown
// on the device's screen is sanitised (iPXE would treat a newline or ${...} in a label as
// script).

// DeviceQuery is the query iPXE fills in when it asks for its script.
const DeviceQuery = "mac=${net0/mac:hexhyp}&uuid=${uuid}"

// ChainScript is the static boot.ipxe (for a DHCP filename): it asks the same endpoint
// again, naming the device.
func ChainScript() string {
	return "#!ipxe\n" + chainAgain("/boot.ipxe?"+DeviceQuery, "")
}

// chainPause is how long a device waits before asking a boot endpoint again after a
// failed request.
const chainPause = 3

// chainAgain chains to url; when the request fails (a connection reset or a timeout in a
// boot storm, a server restarting) the device says so, waits and asks again (fallback,
// when set, instead of url) rather than falling through to "no bootable device".
func chainAgain(url, fallback string) string {
	if fallback == "" {
		fallback = url
	}
	// --replace: the chained script takes this one's place rather than running inside it,
	// so a device that loops (retry answers, redirects while its version is on its way) for
	// hours does not nest one script deeper per round until iPXE fails. A chained script
	// that ends (a menu's local-disk entry exits to the BIOS) ends where this one would.
	return fmt.Sprintf("chain --replace --autofree %s || goto unanswered\nexit\n:unanswered\n"+
		"echo clusterducks: the boot server did not answer; asking again in %d s\nsleep %d\n"+
		":again\nchain --replace --autofree %s || goto unanswered2\nexit\n:unanswered2\nsleep %d\ngoto again\n",
		url, chainPause, chainPause, fallback, chainPause)
}

// SANTarget is a disk to sanboot.
type SANTarget struct {
	Portal string // host:port devices reach the target at
	LUN    int
	IQN    string
	// CHAP credentials, when the target requires them.
	User, Secret string
}

// SANURI is iPXE's iscsi:<server>::<port>:<lun>:<iqn> for t.
func SANURI(t SANTarget) string {
	host, port, err := net.SplitHostPort(t.Portal)
	if err != nil {
		host, port = t.Portal, ""
	}
	if port == "3260" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "iscsi:" + host + "::" + port + ":" + strconv.Itoa(t.LUN) + ":" + t.IQN
}

// SanbootScript boots t; if the boot fails the device says so and reboots after pause.
// Built without fmt: every device of a boot storm gets one.
func SanbootScript(banner string, t SANTarget, pause time.Duration) string {
	var b strings.Builder
	b.Grow(256 + len(banner) + 2*len(t.IQN))
	b.WriteString("#!ipxe\necho ")
	b.WriteString(screenText(banner))
	b.WriteByte('\n')
	if t.User != "" {
		b.WriteString("set username ")
		b.WriteString(scriptWord(t.User))
		b.WriteString("\nset password ")
		b.WriteString(scriptWord(t.Secret))
		b.WriteByte('\n')
	}
	pauseS := strconv.Itoa(seconds(pause))
	b.WriteString("sanboot ")
	b.WriteString(SANURI(t))
	b.WriteString(" || goto failed\n:failed\necho clusterducks: sanboot of ")
	b.WriteString(screenText(t.IQN))
	b.WriteString(" failed; rebooting in ")
	b.WriteString(pauseS)
	b.WriteString(" s\nsleep ")
	b.WriteString(pauseS)
	b.WriteString("\nreboot\n")
	return b.String()
}

// RebootScript shows why the device cannot boot now, waits and reboots: the reboot loop
// of strict versioning, and the answer to an unregistered device.
func RebootScript(why string, pause time.Duration) string {
	return fmt.Sprintf("#!ipxe\necho clusterducks: %s\necho clusterducks: rebooting in %d s\nsleep %d\nreboot\n",
		screenText(why), seconds(pause), seconds(pause))
}

// RetryScript asks again after pause, without a reboot: provisioning is still running.
func RetryScript(why string, pause time.Duration) string {
	return fmt.Sprintf("#!ipxe\necho clusterducks: %s\nsleep %d\n%s",
		screenText(why), seconds(pause), chainAgain("/boot.ipxe?"+DeviceQuery, ""))
}

// RedirectScript hands the device to another server's boot endpoint.
func RedirectScript(why, bootURL string) string {
	sep := "?"
	if strings.Contains(bootURL, "?") {
		sep = "&"
	}
	// If the other server does not answer, this server is asked again (it may know of
	// another holder by then, or answer why not).
	return fmt.Sprintf("#!ipxe\necho clusterducks: %s\n%s",
		screenText(why), chainAgain(scriptWord(bootURL)+sep+DeviceQuery, "/boot.ipxe?"+DeviceQuery))
}

// MenuScript renders a network's menu. Choosing a group asks this endpoint again for that
// group; local boots the first hard disk; chain loads a URL. After timeout the first entry
// is taken.
func MenuScript(title string, entries []wire.MenuEntry, timeout time.Duration) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "menu %s\n", screenText(title))
	for i, e := range entries {
		fmt.Fprintf(&b, "item e%d %s\n", i, screenText(e.Label))
	}
	if len(entries) == 0 {
		b.WriteString("item --gap (this menu has no entries)\n")
		fmt.Fprintf(&b, "choose --timeout %d x || reboot\nreboot\n", timeout.Milliseconds())
		return b.String()
	}
	fmt.Fprintf(&b, "choose --default e0 --timeout %d choice || goto e0\ngoto ${choice}\n", timeout.Milliseconds())
	for i, e := range entries {
		fmt.Fprintf(&b, ":e%d\n", i)
		switch e.Type {
		case wire.MenuGroup:
			fmt.Fprintf(&b, "chain --autofree /boot.ipxe?%s&group=%d\n", DeviceQuery, e.GroupID)
		case wire.MenuLocal:
			b.WriteString("sanboot --no-describe --drive 0x80 || exit\n")
		case wire.MenuChain:
			fmt.Fprintf(&b, "chain --autofree %s\n", scriptWord(e.URL))
		default:
			b.WriteString("exit\n")
		}
	}
	return b.String()
}

// screenText makes s safe as the rest of an echo/menu/item line: one line, no settings
// expansion, printable ASCII.
func screenText(s string) string {
	if len(s) <= 200 && plainText(s) {
		return s // the usual case: nothing to change
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '$':
			b.WriteString("S")
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r < ' ' || r > '~':
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() > 200 {
		return b.String()[:200]
	}
	return b.String()
}

// plainText reports whether screenText leaves s as it is: printable ASCII without '$'.
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '$' {
			return false
		}
	}
	return true
}

// scriptWord makes s one iPXE word: no spaces, quotes or expansions.
func scriptWord(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || r == '$' || r == '"' || r == '\'' || r == '#' {
			return -1
		}
		return r
	}, s)
}

func seconds(d time.Duration) int {
	return max(int(d.Round(time.Second)/time.Second), 1)
}

// ScriptKind names what a script of this package tells the device to do, for metrics:
// sanboot, menu, reboot, retry (ask this server again after a pause), redirect (ask
// another server), chain (the first request, without a MAC), or other.
func ScriptKind(script string) string {
	lines := strings.SplitN(script, "\n", 5)
	at := func(i int, prefix string) bool { return len(lines) > i && strings.HasPrefix(lines[i], prefix) }
	switch {
	case at(1, "menu "):
		return "menu"
	case strings.Contains(script, "\nsanboot iscsi:"):
		return "sanboot"
	case at(1, "chain "):
		return "chain"
	case at(1, "echo ") && at(2, "sleep ") && at(3, "chain "):
		return "retry"
	case at(1, "echo ") && at(2, "chain "):
		return "redirect"
	case strings.HasSuffix(script, "\nreboot\n"):
		return "reboot"
	}
	return "other"
}
