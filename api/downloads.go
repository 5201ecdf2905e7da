package api

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Paths of what a new storage server fetches from the panel (install.sh, the guide's
// "Register the Master Server" step 15). Public: a server has no account, and nothing
// here is secret (the server key never leaves the server).
const (
	PathInstallScript = "/install.sh"
	PathAgentBinary   = "/downloads/clusterducks-agent-linux-amd64"
	PathAgentChecksum = PathAgentBinary + ".sha256"
)

// Downloads serves install.sh and the agent binary with its sha256.
type Downloads struct {
	Script []byte // deploy.InstallScript
	// Binary is the agent executable to hand out; "" means this process's own executable
	// when it is a static linux/amd64 build (the release build is: one binary for every role).
	Binary string

	mu  sync.Mutex
	sum binarySum
}

// binarySum caches the checksum of one version of the binary file.
type binarySum struct {
	path    string
	size    int64
	modTime time.Time
	hex     string
}

// errNoBinary means the panel has no agent binary to serve.
var errNoBinary = errors.New("this panel has no static linux/amd64 agent binary to serve: set CLUSTERDUCKS_AGENT_BINARY to one")

// Mount registers the download routes on app.
func (d *Downloads) Mount(app *fiber.App) {
	app.Get(PathInstallScript, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/x-shellscript; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Send(d.Script)
	})
	app.Get(PathAgentChecksum, func(c *fiber.Ctx) error {
		path, sum, err := d.checksum()
		if err != nil {
			return downloadError(err)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		c.Set(fiber.HeaderCacheControl, "no-store")
		// sha256sum's own format, so `sha256sum -c` reads it too.
		return c.SendString(fmt.Sprintf("%s  %s\n", sum, filepath.Base(path)))
	})
	app.Get(PathAgentBinary, func(c *fiber.Ctx) error {
		path, _, err := d.checksum()
		if err != nil {
			return downloadError(err)
		}
		f, err := os.Open(path)
		if err != nil {
			return downloadError(err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return downloadError(err)
		}
		c.Set(fiber.HeaderContentType, "application/octet-stream")
		c.Set(fiber.HeaderCacheControl, "no-store")
		// Fiber closes the file once it is sent.
		return c.SendStream(f, int(st.Size()))
	})
}

func downloadError(err error) error {
	if errors.Is(err, errNoBinary) {
		return fiber.NewError(fiber.StatusNotFound, err.Error())
	}
	return fiber.NewError(fiber.StatusServiceUnavailable, "the agent binary cannot be read on the panel")
}

// checksum returns the binary's path and sha256, computed again only when the file changed.
func (d *Downloads) checksum() (string, string, error) {
	path := d.Binary
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return "", "", errNoBinary
		}
		path = self
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sum.path == path && d.sum.size == st.Size() && d.sum.modTime.Equal(st.ModTime()) {
		return path, d.sum.hex, nil
	}
	if d.Binary == "" && !staticLinuxAMD64(path) {
		return "", "", errNoBinary
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", err
	}
	d.sum = binarySum{path: path, size: st.Size(), modTime: st.ModTime(), hex: hex.EncodeToString(h.Sum(nil))}
	return path, d.sum.hex, nil
}

// staticLinuxAMD64 tells whether path is an x86-64 ELF executable without an
// interpreter: one that runs on a minimal Debian whatever its libc.
func staticLinuxAMD64(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return false
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
