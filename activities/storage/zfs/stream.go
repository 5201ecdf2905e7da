package zfs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clusterducks/clusterducks/activities"
	"golang.org/x/sys/unix"
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

// State is what replication reads of a dataset, all in one zfs list: its snapshots with
// their guids and holds, and the dataset's own properties a transfer depends on.
type State struct {
	Snaps []Snap // oldest first
	// Held are the snapshots (names after the @) that carry at least one user hold.
	Held        []string
	Encryption  string // "off" when none
	Origin      string // the snapshot a clone was made from, "" when none
	ResumeToken string // receive_resume_token, "" when no partial receive
	Written     string // bytes written since the newest snapshot
}

// stateColumns are State's columns, in the order parseState reads them.
const stateColumns = "name,guid,createtxg,userrefs,encryption,origin,receive_resume_token,written"

// State lists a dataset and its own snapshots with one command (the per-property zfs get
// calls it replaces cost a process each, seconds in a loaded guest). ErrDatasetNotFound
// when the dataset does not exist.
func (z *ZFS) State(ctx context.Context, dataset string) (*State, error) {
	out, err := z.run(ctx, "list", "-H", "-p", "-t", "filesystem,volume,snapshot", "-d", "1", "-s", "createtxg", "-o", stateColumns, dataset)
	if err != nil {
		return nil, err
	}
	return parseState(dataset, out)
}

func parseState(dataset, out string) (*State, error) {
	st := &State{Snaps: []Snap{}, Held: []string{}}
	found := false
	none := func(v string) string {
		if v == "-" {
			return ""
		}
		return v
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			continue
		}
		if f[0] == dataset {
			found = true
			st.Encryption, st.Origin, st.ResumeToken, st.Written = f[4], none(f[5]), none(f[6]), f[7]
			continue
		}
		name, ok := strings.CutPrefix(f[0], dataset+"@")
		if !ok {
			continue // a child dataset (-d 1 lists those too)
		}
		txg, _ := strconv.ParseUint(f[2], 10, 64)
		st.Snaps = append(st.Snaps, Snap{Name: name, GUID: f[1], CreateTXG: txg})
		if f[3] != "0" && f[3] != "-" {
			st.Held = append(st.Held, name)
		}
	}
	if !found {
		return nil, fmt.Errorf("zfs list %s: the dataset is not in the listing", dataset)
	}
	return st, nil
}

// Property reads one property's value ("-" means none); ErrDatasetNotFound when missing.
func (z *ZFS) Property(ctx context.Context, name, prop string) (string, error) {
	out, err := z.run(ctx, "get", "-H", "-p", "-o", "value", prop, name)
	return strings.TrimSpace(out), err
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

// Hold places tag on snapshots with one command (zfs hold tries each named snapshot in
// turn, so one that has the tag already does not keep the others from getting it); a tag
// already there is success.
func (z *ZFS) Hold(ctx context.Context, tag string, snapshots ...string) error {
	if len(snapshots) == 0 {
		return nil
	}
	_, err := z.run(ctx, append([]string{"hold", tag}, snapshots...)...)
	return onlyBenign(err, func(line string) bool { return strings.Contains(line, "tag already exists") })
}

// Release removes tag from snapshots with one command (zfs release tries each in turn);
// a tag or snapshot already gone is success.
func (z *ZFS) Release(ctx context.Context, tag string, snapshots ...string) error {
	if len(snapshots) == 0 {
		return nil
	}
	_, err := z.run(ctx, append([]string{"release", tag}, snapshots...)...)
	return onlyBenign(err, func(line string) bool {
		return strings.Contains(line, "no such tag") || errors.Is(Classify(line), activities.ErrDatasetNotFound)
	})
}

// onlyBenign is nil when err is a failed command every line of whose stderr benign
// accepts (one line per snapshot the command could not change), else err.
func onlyBenign(err error, benign func(line string) bool) error {
	var e *Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	if errors.Is(err, activities.ErrDatasetNotFound) && benign("cannot open: dataset does not exist") {
		return nil
	}
	lines := 0
	for _, line := range strings.Split(e.Stderr, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		lines++
		if !benign(line) {
			return err
		}
	}
	if lines == 0 {
		return err
	}
	return nil
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
	// Single: no snapshot lies between From and Snapshot, so the stream is -i (the
	// target alone), not -I (every snapshot after From). Both stream the same; zfs
	// sizes an -I stream through its replication path, which costs 0.3 s more per
	// send in a TCG guest (measured: 0.59–0.71 s against 0.26–0.38 s).
	Single bool
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
		flag := "-I"
		if a.Single {
			flag = "-i"
		}
		args = append(args, flag, a.From)
	}
	return append(args, a.Snapshot)
}

// Stream is a running zfs send: read it, then Close (which waits for the command and
// reports its failure as an *Error).
type Stream struct {
	io.Reader
	out    io.ReadCloser
	cmd    *exec.Cmd
	stderr *lockedBuffer
	errEOF chan struct{} // closed when stderr is read to its end
	line   string
	start  time.Time
	ctx    context.Context
	z      *ZFS
}

// Close ends the send (killing it if its output was not read to the end) and returns
// its error.
func (s *Stream) Close() error {
	_ = s.out.Close() // an unread stream: zfs send ends on a broken pipe
	<-s.errEOF
	err := s.cmd.Wait()
	took := time.Since(s.start)
	if err != nil {
		s.z.Log.Info("zfs failed", "cmd", s.line, "took", took, "stderr", strings.TrimSpace(s.stderr.String()))
		return commandError(s.line, s.stderr.String(), err, s.ctx.Err())
	}
	s.z.Log.Info("zfs", "cmd", s.line, "took", took)
	return nil
}

// Pipe returns the bytes of the stream read ahead (at most the buffer Send peeked with)
// and zfs send's output pipe, for a caller that moves the rest without reading it
// through the Stream (a splice into a socket). After Pipe, read only the pipe; Close as
// before.
func (s *Stream) Pipe() ([]byte, *os.File) {
	br, ok := s.Reader.(*bufio.Reader)
	f, fok := s.out.(*os.File)
	if !ok || !fok {
		return nil, nil
	}
	head, _ := br.Peek(br.Buffered())
	return head, f
}

// lockedBuffer is a stderr buffer written by its reader goroutine and read by Close.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Send starts zfs send -P and returns the stream (a *Stream) with its estimated size in
// bytes (0 when zfs printed none). -P makes zfs print its estimate on stderr before the
// stream begins, so sizing costs no second command (a zfs send -n -P). The stream ends
// with ctx (the command is killed). A send that fails before streaming (a stale token, a
// missing snapshot) returns its *Error here.
func (z *ZFS) Send(ctx context.Context, a SendArgs) (io.ReadCloser, int64, error) {
	args := a.args()
	args = append([]string{args[0], "-P"}, args[1:]...)
	s := &Stream{cmd: exec.CommandContext(ctx, "zfs", args...), stderr: &lockedBuffer{}, errEOF: make(chan struct{}),
		line: "zfs " + strings.Join(args, " "), start: time.Now(), ctx: ctx, z: z}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	growPipe(out)
	errPipe, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, 0, commandError(s.line, "", err, ctx.Err())
	}
	z.Log.Info("zfs started", "cmd", s.line)
	sizes := make(chan int64, 1)
	go func() {
		defer close(s.errEOF)
		sent := false
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if f := strings.Fields(line); !sent && len(f) == 2 && f[0] == "size" {
				if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					sizes <- n
					sent = true
					continue
				}
			}
			if len(s.stderr.String()) < 64<<10 { // zfs -P may print progress lines for hours
				s.stderr.WriteString(line + "\n")
			}
		}
		_, _ = io.Copy(io.Discard, errPipe) // a line beyond the scanner's limit: drain
	}()
	// The estimate comes before the stream. Wait for the size, or for the stream's first
	// byte (then a little longer: the two pipes are read apart), or for the end of stderr
	// (zfs failed or printed nothing). The stream is returned only once the first read
	// has ended, so no two goroutines read it at once.
	br := bufio.NewReaderSize(out, 128<<10)
	first := make(chan struct{})
	go func() {
		_, _ = br.Peek(1)
		close(first)
	}()
	var size int64
	select {
	case size = <-sizes:
	case <-s.errEOF:
	case <-first:
		select {
		case size = <-sizes:
		case <-s.errEOF:
		case <-time.After(200 * time.Millisecond):
		}
	}
	<-first
	s.out, s.Reader = out, br
	if br.Buffered() == 0 {
		// Nothing to stream: zfs failed before the stream (a stale token, a missing
		// snapshot), and that is the caller's answer now.
		if err := s.Close(); err != nil {
			return nil, 0, err
		}
		return io.NopCloser(strings.NewReader("")), size, nil
	}
	return s, size, nil
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
//
// An *os.File (a socket whose kernel opens the stream's TLS records) is zfs receive's
// input itself: no byte passes through the agent. When ctx ends, the socket's reading
// side is shut, and the receive dies with the agent (it must not go on reading a
// connection nobody watches).
func (z *ZFS) Receive(ctx context.Context, a ReceiveArgs, r io.Reader) error {
	args := []string{"receive", "-s", "-F", "-u"}
	if a.Origin != "" {
		args = append(args, "-o", "origin="+a.Origin)
	}
	args = append(args, a.Dataset)
	line := "zfs " + strings.Join(args, " ")
	cmd := exec.CommandContext(ctx, "zfs", args...)
	var in io.WriteCloser // the pipe the stream is copied into; nil when zfs reads a file
	if f, ok := r.(*os.File); ok {
		cmd.Stdin = f
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Cancel = func() error {
			if err := unix.Shutdown(int(f.Fd()), unix.SHUT_RD); err != nil {
				return cmd.Process.Kill()
			}
			return nil
		}
	} else {
		var err error
		if in, err = cmd.StdinPipe(); err != nil {
			return err
		}
		growPipe(in)
		// Cancelled: close the input (EOF), so receive saves its state, and kill it only if
		// it does not end by itself.
		cmd.Cancel = func() error { return in.Close() }
	}
	cmd.WaitDelay = time.Minute
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return commandError(line, "", err, ctx.Err())
	}
	z.Log.Info("zfs started", "cmd", line, "copied", in != nil)
	defer z.Changed() // a receive makes datasets (a cut one too, its partial state)
	var cerr error
	if in != nil {
		_, cerr = copyCoalesced(in, r)
		_ = in.Close()
	}
	err := cmd.Wait()
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

// pipeSize is what a stream's pipe to or from zfs holds (Linux's default is 64 KiB): zfs
// and the agent run ahead of each other by this much, and the agent reads and writes the
// stream in larger pieces.
const pipeSize = 1 << 20

// growPipe sets p's capacity to pipeSize where the system allows it (a smaller limit in
// /proc/sys/fs/pipe-max-size leaves it as it is).
func growPipe(p any) {
	sc, ok := p.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
}
