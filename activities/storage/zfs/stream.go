package zfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities"
)

// Replication's zfs calls: send and receive streams, resume tokens, holds and snapshot
// lists with guids. They run the commands directly (go-zfs has no streams and no
// context), through run and Stream, which log, time and classify them like call.

// DestroySnapshot destroys one snapshot (dataset@name, never a dataset). A snapshot already
// gone is success; a held one fails with ErrBusy, one with clones with ErrHasClones.
func (z *ZFS) DestroySnapshot(ctx context.Context, snapshot string) error {
	if !strings.Contains(snapshot, "@") {
		return fmt.Errorf("destroy %s: not a snapshot", snapshot)
	}
	_, err := z.run(ctx, "destroy", snapshot)
	if errors.Is(err, activities.ErrDatasetNotFound) {
		return nil
	}
	if err == nil {
		z.Changed()
	}
	return err
}

// ErrStaleToken: a resume token names a snapshot the sender no longer has (or no longer
// the same one): the partial receive must be aborted and the transfer restarted from the
// last common snapshot.
var ErrStaleToken = errors.New("resume token is stale")

// ErrNotResumable: the receiving side holds a partial receive, so a fresh stream cannot
// be received until it is resumed or aborted.
var ErrNotResumable = errors.New("dataset holds a partial receive")

// streamTypes are the send/receive messages of OpenZFS 2.x beyond stderrTypes.
var streamTypes = []struct {
	phrase string
	err    error
}{
	{"used in the initial send no longer exists", ErrStaleToken},
	{"is no longer the same snapshot used in the initial send", ErrStaleToken},
	{"resume token is corrupt", ErrStaleToken},
	{"contains partially-complete state", ErrNotResumable},
}

func classifyStream(stderr string) error {
	s := strings.ToLower(stderr)
	for _, t := range streamTypes {
		if strings.Contains(s, t.phrase) {
			return t.err
		}
	}
	return Classify(stderr)
}

// commandError is a failed command as an *Error; ctxErr is the context's error, which a
// killed command reports instead of its (empty) stderr.
func commandError(line string, stderr string, err error, ctxErr error) error {
	if ctxErr != nil && strings.TrimSpace(stderr) == "" {
		return fmt.Errorf("%s: %w", line, ctxErr)
	}
	e := &Error{Command: line, Stderr: stderr, Typed: classifyStream(stderr)}
	if strings.TrimSpace(stderr) == "" && err != nil {
		e.Stderr = err.Error()
	}
	return e
}

// run runs one zfs command to its end and returns its stdout.
func (z *ZFS) run(ctx context.Context, args ...string) (string, error) {
	out, _, err := z.run2(ctx, args...)
	return out, err
}

// run2 is run returning stderr as well (some commands print what they report there).
func (z *ZFS) run2(ctx context.Context, args ...string) (string, string, error) {
	return z.runIn(ctx, nil, args...)
}

// runIn is run2 with the command's standard input read from stdin (nil: none).
func (z *ZFS) runIn(ctx context.Context, stdin io.Reader, args ...string) (string, string, error) {
	line := "zfs " + strings.Join(args, " ")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "zfs", args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		ferr := commandError(line, errb.String(), err, ctx.Err())
		z.logFailure(ferr, "cmd", line, "took", took, "stderr", strings.TrimSpace(errb.String()))
		return "", "", ferr
	}
	z.Log.Debug("zfs", "cmd", line, "took", took)
	return out.String(), errb.String(), nil
}

// Snap is a snapshot of a dataset with its guid (the identity that survives a send).
type Snap struct {
	Name      string `json:"name"` // after the @
	GUID      string `json:"guid"`
	CreateTXG uint64 `json:"createtxg"`
}

// Snapshots lists a dataset's own snapshots, oldest first, with their guids.
// ErrDatasetNotFound when the dataset does not exist.
func (z *ZFS) Snapshots(ctx context.Context, dataset string) ([]Snap, error) {
	out, err := z.run(ctx, "list", "-H", "-p", "-t", "snapshot", "-d", "1", "-s", "createtxg", "-o", "name,guid,createtxg", dataset)
	if err != nil {
		return nil, err
	}
	return parseSnaps(out), nil
}

func parseSnaps(out string) []Snap {
	var snaps []Snap
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		_, name, ok := strings.Cut(f[0], "@")
		if !ok {
			continue
		}
		txg, _ := strconv.ParseUint(f[2], 10, 64)
		snaps = append(snaps, Snap{Name: name, GUID: f[1], CreateTXG: txg})
	}
	return snaps
}

// Property reads one property's value ("-" means none); ErrDatasetNotFound when missing.
func (z *ZFS) Property(ctx context.Context, name, prop string) (string, error) {
	out, err := z.run(ctx, "get", "-H", "-p", "-o", "value", prop, name)
	return strings.TrimSpace(out), err
}

// ResumeToken is a dataset's receive_resume_token, "" when it holds no partial receive
// or does not exist.
func (z *ZFS) ResumeToken(ctx context.Context, dataset string) (string, error) {
	v, err := z.Property(ctx, dataset, "receive_resume_token")
	if errors.Is(err, activities.ErrDatasetNotFound) || v == "-" {
		return "", nil
	}
	return v, err
}

// AbortReceive discards a dataset's partial receive (zfs receive -A). Nothing to abort
// is success.
func (z *ZFS) AbortReceive(ctx context.Context, dataset string) error {
	_, err := z.run(ctx, "receive", "-A", dataset)
	var e *Error
	if err != nil && (errors.Is(err, activities.ErrDatasetNotFound) ||
		errors.As(err, &e) && strings.Contains(e.Stderr, "does not have any resumable receive state")) {
		return nil
	}
	return err
}

// TokenTarget is the snapshot a resume token continues (its toname), read with a dry run.
func (z *ZFS) TokenTarget(ctx context.Context, token string) (string, error) {
	// OpenZFS prints the token's contents on stderr (stdout is for streams).
	out, errOut, err := z.run2(ctx, "send", "-n", "-v", "-t", token)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out+"\n"+errOut, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " = "); ok && k == "toname" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("resume token names no snapshot: %w", ErrStaleToken)
}

// Hold places tag on a snapshot; a tag already there is success.
func (z *ZFS) Hold(ctx context.Context, snapshot, tag string) error {
	_, err := z.run(ctx, "hold", tag, snapshot)
	var e *Error
	if errors.As(err, &e) && strings.Contains(e.Stderr, "tag already exists") {
		return nil
	}
	return err
}

// Release removes tag from a snapshot; a tag or snapshot already gone is success.
func (z *ZFS) Release(ctx context.Context, snapshot, tag string) error {
	_, err := z.run(ctx, "release", tag, snapshot)
	var e *Error
	if errors.Is(err, activities.ErrDatasetNotFound) ||
		errors.As(err, &e) && strings.Contains(e.Stderr, "no such tag") {
		return nil
	}
	return err
}

// Holds lists the tags held on the snapshots of every dataset under root (recursively),
// as snapshot -> tags.
func (z *ZFS) Holds(ctx context.Context, root string) (map[string][]string, error) {
	out, err := z.run(ctx, "list", "-H", "-p", "-r", "-t", "snapshot", "-o", "name,userrefs", root)
	if err != nil {
		return nil, err
	}
	var held []string
	for _, line := range strings.Split(out, "\n") {
		name, refs, ok := strings.Cut(line, "\t")
		if ok && refs != "0" && refs != "-" {
			held = append(held, name)
		}
	}
	res := map[string][]string{}
	if len(held) == 0 {
		return res, nil
	}
	out, err = z.run(ctx, append([]string{"holds", "-H"}, held...)...)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) >= 2 {
			res[f[0]] = append(res[f[0]], f[1])
		}
	}
	return res, nil
}

// SendArgs says what zfs send streams: Snapshot (dataset@snap) in full, or incremental
// from From (a full snapshot name, possibly of the origin) with every snapshot between
// (-I: a slave gets every version, not only the newest), or the rest of a cut stream
// (Token, which overrides the others).
type SendArgs struct {
	Snapshot string
	From     string
	Token    string
	Raw      bool // -w: encrypted datasets travel as they are stored
}

func (a SendArgs) args() []string {
	if a.Token != "" {
		return []string{"send", "-t", a.Token}
	}
	args := []string{"send", "-c"}
	if a.Raw {
		args = []string{"send", "-w"}
	}
	if a.From != "" {
		args = append(args, "-I", a.From)
	}
	return append(args, a.Snapshot)
}

// SendSize is the estimated size in bytes of a send (zfs send -n -P).
func (z *ZFS) SendSize(ctx context.Context, a SendArgs) (int64, error) {
	args := a.args()
	out, err := z.run(ctx, append([]string{args[0], "-n", "-P"}, args[1:]...)...)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "size" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, nil
}

// Stream is a running zfs send: read it, then Close (which waits for the command and
// reports its failure as an *Error).
type Stream struct {
	io.Reader
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	line   string
	start  time.Time
	ctx    context.Context
	z      *ZFS
}

// Close ends the send (killing it if its output was not read to the end) and returns
// its error.
func (s *Stream) Close() error {
	if rc, ok := s.Reader.(io.ReadCloser); ok {
		_ = rc.Close() // an unread stream: zfs send ends on a broken pipe
	}
	err := s.cmd.Wait()
	took := time.Since(s.start)
	if err != nil {
		s.z.Log.Info("zfs failed", "cmd", s.line, "took", took, "stderr", strings.TrimSpace(s.stderr.String()))
		return commandError(s.line, s.stderr.String(), err, s.ctx.Err())
	}
	s.z.Log.Info("zfs", "cmd", s.line, "took", took)
	return nil
}

// Send starts zfs send (a *Stream); the stream ends with ctx (the command is killed).
func (z *ZFS) Send(ctx context.Context, a SendArgs) (io.ReadCloser, error) {
	args := a.args()
	s := &Stream{cmd: exec.CommandContext(ctx, "zfs", args...), stderr: &bytes.Buffer{},
		line: "zfs " + strings.Join(args, " "), start: time.Now(), ctx: ctx, z: z}
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, commandError(s.line, "", err, ctx.Err())
	}
	z.Log.Info("zfs started", "cmd", s.line)
	s.Reader = out
	return s, nil
}

// ReceiveArgs says where zfs receive -s writes a stream.
type ReceiveArgs struct {
	Dataset string
	// Origin, when set, makes a new dataset a clone of this snapshot (-o origin=): a
	// group's first stream is an incremental from its volume's snapshot.
	Origin string
}

// Receive runs zfs receive -s -F reading r until its end. A stream cut short leaves a
// resume token on the dataset (-s). When ctx ends, the command's input is closed rather
// than the command killed, so it saves its resume state the same way.
func (z *ZFS) Receive(ctx context.Context, a ReceiveArgs, r io.Reader) error {
	args := []string{"receive", "-s", "-F", "-u"}
	if a.Origin != "" {
		args = append(args, "-o", "origin="+a.Origin)
	}
	args = append(args, a.Dataset)
	line := "zfs " + strings.Join(args, " ")
	cmd := exec.CommandContext(ctx, "zfs", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	// Cancelled: close the input (EOF), so receive saves its state, and kill it only if
	// it does not end by itself.
	cmd.Cancel = func() error { return in.Close() }
	cmd.WaitDelay = time.Minute
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return commandError(line, "", err, ctx.Err())
	}
	z.Log.Info("zfs started", "cmd", line)
	defer z.Changed() // a receive makes datasets (a cut one too, its partial state)
	_, cerr := io.Copy(in, r)
	_ = in.Close()
	err = cmd.Wait()
	took := time.Since(start)
	if err != nil {
		z.Log.Info("zfs failed", "cmd", line, "took", took, "stderr", strings.TrimSpace(errb.String()), "input", cerr)
		if cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
			// The stream broke: that is the cause, receive's complaint follows from it.
			return fmt.Errorf("%s: stream: %w (%s)", line, cerr, strings.TrimSpace(errb.String()))
		}
		return commandError(line, errb.String(), err, ctx.Err())
	}
	if cerr != nil {
		return fmt.Errorf("%s: stream: %w", line, cerr)
	}
	z.Log.Info("zfs", "cmd", line, "took", took)
	return nil
}

// Rollback returns a file system to its newest snapshot snapshot (dataset@name), dropping
// what was written since.
func (z *ZFS) Rollback(ctx context.Context, snapshot string) error {
	_, err := z.run(ctx, "rollback", snapshot)
	return err
}
