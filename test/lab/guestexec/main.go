// Command guestexec runs commands inside a storage lab VM for the tests on the host.
//
// It is test tooling, not product code: the lab's guest init starts it as root, and the
// host reaches it only through qemu's user-mode port forward on 127.0.0.1. Each request
// must carry the VM's random token, read from the host share at start.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// request is one command to run; Stdin is fed to it whole.
type request struct {
	Args  []string `json:"args"`
	Stdin []byte   `json:"stdin,omitempty"`
	Env   []string `json:"env,omitempty"`
	Dir   string   `json:"dir,omitempty"`
}

// response is what the command did; Error is set when it could not be started.
type response struct {
	Stdout   []byte `json:"stdout"`
	Stderr   []byte `json:"stderr"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

func main() {
	listen := flag.String("listen", ":7022", "address to serve on")
	tokenFile := flag.String("token-file", "/mnt/host/token", "file holding the shared secret")
	flag.Parse()
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		log.Fatalf("token: %v", err)
	}
	token := strings.TrimSpace(string(tok))
	if token == "" {
		log.Fatal("token: empty")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Lab-Token") != token {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Write([]byte("pong\n")) //nolint:errcheck
	})
	mux.HandleFunc("POST /exec", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Lab-Token") != token {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Args) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		// The command dies with the request: a host test that gives up leaves nothing running.
		ctx := r.Context()
		cmd := exec.CommandContext(ctx, req.Args[0], req.Args[1:]...)
		cmd.WaitDelay = 5 * time.Second
		cmd.Dir = req.Dir
		cmd.Env = append(os.Environ(), req.Env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdin = bytes.NewReader(req.Stdin)
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		res := response{}
		err := cmd.Run()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exitErr):
			res.ExitCode = exitErr.ExitCode()
		default:
			res.ExitCode = -1
			res.Error = err.Error()
		}
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
			res.Error = ctx.Err().Error()
		}
		res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res) //nolint:errcheck
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
