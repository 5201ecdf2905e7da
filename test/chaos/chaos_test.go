package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/test/lab"
	"gorm.io/gorm"
)

// chaosRounds is how many rounds CI runs (one kill each, every kind of process once);
// CLUSTERDUCKS_CHAOS_ROUNDS asks for more (`go test -run TestChaos ./test/chaos` with a
// long -timeout).
const chaosRounds = 4

// victims are the processes a round may kill.
var victims = []string{"panel", "agent", "temporal", "postgres"}

// TestChaos drives the guide's sequence (a volume, a group cloned from it, a published
// version) round after round while it SIGKILLs, at a random point chosen from a seed it
// prints, one of: a panel, the agent, the Temporal server or PostgreSQL, and restarts it.
// After each round, once everything is back, it checks and prints the invariants: every
// operation has ended (a failure says why); every write the API acknowledged is there;
// every volume and group dataset on the pool belongs to a row, and every ready row has
// its dataset (nothing orphaned, nothing twice); every ready version's snapshot carries
// the guid the panel recorded.
func TestChaos(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	rounds := chaosRounds
	if n, err := strconv.Atoi(os.Getenv("CLUSTERDUCKS_CHAOS_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("CLUSTERDUCKS_CHAOS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("chaos: %d rounds, seed %d (CLUSTERDUCKS_CHAOS_SEED=%d repeats them)", rounds, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	// A PostgreSQL of its own (this test kills it), durable as in production, Temporal on
	// it, two panels, an agent.
	pg, err := harness.StartDurablePostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	bin, err := lab.BuildBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	temporalArgs := []string{"temporal", "--db", pg.URL("temporal"), "--ui-port", "-1", "--port", "-1"}
	tp := start(t, "temporal", bin, nil, temporalArgs...)
	m, err := tp.await(ctx, regexp.MustCompile(`temporal: frontend (\S+), namespace`), 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	frontend := strings.TrimSuffix(m[1], ",")
	_, port, _ := strings.Cut(frontend, ":")
	temporalArgs[len(temporalArgs)-1] = port // a restart listens where panels and the agent dial
	dsn := pg.NewDatabase(t)
	db, err := models.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"DATABASE_URL=" + dsn, "TEMPORAL_ADDRESS=" + frontend, "TEMPORAL_NAMESPACE=default", "CLUSTERDUCKS_ALLOW_LOOPBACK=1"}
	panels := []*panel{startPanel(t, "panel A", bin, env)}
	tok, err := panels[0].await(ctx, regexp.MustCompile(`API token: (\S+)`), 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	panels[0].api.Token = tok[1]
	if err := panels[0].ready(ctx); err != nil {
		t.Fatal(err)
	}
	panels = append(panels, startPanel(t, "panel B", bin, env))
	panels[1].api.Token = tok[1]
	if err := panels[1].ready(ctx); err != nil {
		t.Fatal(err)
	}
	api := panels[0].api
	network, err := api.CreateNetwork(ctx, "Chaos")
	if err != nil {
		t.Fatal(err)
	}
	srv := sharedVM(t)
	pool := newPool(t, srv)
	serverID, key, err := api.CreateServer(ctx, network, "chaos", lab.GuestIP, pool)
	if err != nil {
		t.Fatal(err)
	}
	ag := startAgent(t, srv, panels[0].api.URL, pool, key)
	if op := waitOp(ctx, t, api, "server-bootstrap", serverID, 10*time.Minute); op.State != "succeeded" {
		t.Fatalf("bootstrap: %+v", op)
	}

	c := &chaos{t: t, ctx: ctx, db: db, panels: panels, network: network, agent: ag}
	kills := map[string]int{}
	var order []int // each kind of process once per len(victims) rounds, in a seeded order
	for r := 1; r <= rounds; r++ {
		if len(order) == 0 {
			order = rng.Perm(len(victims))
		}
		victim := victims[order[0]]
		order = order[1:]
		if victim == "panel" {
			victim = []string{"panel A", "panel B"}[rng.IntN(2)]
		}
		after := time.Duration(rng.IntN(8000)) * time.Millisecond
		down := time.Second + time.Duration(rng.IntN(3000))*time.Millisecond
		restart := func() {}
		kill := func() {
			switch victim {
			case "panel A", "panel B":
				i := int(victim[len(victim)-1] - 'A')
				panels[i].kill()
				restart = func() { panels[i].restart(t, bin, env) }
			case "agent":
				ag.kill()
				restart = ag.start
			case "temporal":
				tp.kill()
				restart = func() { tp = start(t, "temporal", bin, nil, temporalArgs...) }
			case "postgres":
				pg.Kill()
				restart = func() {
					if err := pg.Restart(); err != nil {
						t.Errorf("restart postgres: %v", err)
					}
				}
			}
		}
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			time.Sleep(after)
			kill()
			time.Sleep(down)
			restart()
		}()
		acked := c.workload(r, 3*time.Minute)
		<-killed
		kills[victim]++
		// Like systemd's Restart=always: a process that died of another's death (Temporal
		// losing PostgreSQL, say) is started again, and the report says so.
		revive := func() {
			select {
			case <-tp.done:
				t.Logf("round %d: temporal had exited (%s); restarted", r, lastLine(tp.out.String()))
				tp = start(t, "temporal", bin, nil, temporalArgs...)
			default:
			}
			for i, p := range panels {
				select {
				case <-p.done:
					t.Logf("round %d: %s had exited (%s); restarted", r, p.name, lastLine(p.out.String()))
					panels[i].restart(t, bin, env)
				default:
				}
			}
			if out, err := ag.exec(fmt.Sprintf("kill -0 $(cat /run/%s.pid)", ag.name)); err != nil {
				t.Logf("round %d: the agent had exited (%s); restarted", r, strings.TrimSpace(out))
				ag.start()
			}
		}
		revive()
		c.revive = revive
		for _, p := range panels {
			if err := p.ready(ctx); err != nil {
				t.Fatalf("round %d: %s did not come back: %v", r, p.name, err)
			}
		}
		report, violations := c.check(acked, 10*time.Minute)
		t.Logf("round %d: killed %s %s into the round for %s; %s", r, victim, after, down.Round(100*time.Millisecond), report)
		for _, v := range violations {
			t.Errorf("round %d (seed %d): %s", r, seed, v)
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("chaos: %d rounds, kills %v, seed %d", rounds, kills, seed)
}

type chaos struct {
	t       *testing.T
	ctx     context.Context
	db      *gorm.DB
	panels  []*panel
	network uint
	agent   *agent
	revive  func() // restarts whatever died, as systemd would
}

// ack is a write the API acknowledged: the object's kind and id.
type ack struct {
	kind string // volume, group, version
	id   uint
}

// call does one API request on whichever panel answers; it is repeated only while no
// panel is reachable or the answer is a 5xx (the write was not acknowledged).
func (c *chaos) call(method, path string, body any, out any, within time.Duration) error {
	deadline := time.Now().Add(within)
	for i := 0; ; i++ {
		err := c.panels[i%len(c.panels)].api.Call(c.ctx, method, path, body, out)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || (!isRetryable(err)) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var status4xx = regexp.MustCompile(`: 4\d\d `)

func isRetryable(err error) bool { return !status4xx.MatchString(err.Error()) }

// workload is one round of the guide: a volume, a group from it, a version of the group.
// Each step waits for the one before; what the API acknowledged is returned.
func (c *chaos) workload(round int, within time.Duration) []ack {
	var acked []ack
	var obj struct {
		ID uint `json:"id"`
	}
	if err := c.call("POST", "volumes.json", map[string]any{"network": c.network, "Alias": fmt.Sprintf("chaos %d", round), "vol_size": 1}, &obj, within); err != nil {
		c.t.Logf("round %d: volume create not acknowledged: %v", round, err)
		return acked
	}
	acked = append(acked, ack{"volume", obj.ID})
	if c.waitReady("volumes", obj.ID, within) != models.StateReady {
		return acked
	}
	vol := obj.ID
	obj.ID = 0
	if err := c.call("POST", "groups.json", map[string]any{"network": c.network, "Name": fmt.Sprintf("chaos %d", round), "VolumeID": vol}, &obj, within); err != nil {
		c.t.Logf("round %d: group create not acknowledged: %v", round, err)
		return acked
	}
	acked = append(acked, ack{"group", obj.ID})
	if c.waitReady("groups", obj.ID, within) != models.StateReady {
		return acked
	}
	grp := obj.ID
	obj.ID = 0
	if err := c.call("POST", fmt.Sprintf("groups/%d/publish.json", grp), map[string]any{}, &obj, within); err != nil {
		c.t.Logf("round %d: publish not acknowledged: %v", round, err)
		return acked
	}
	return append(acked, ack{"version", obj.ID})
}

// waitReady polls an object until it leaves pending, and returns its state ("" when the
// panels never answered).
func (c *chaos) waitReady(coll string, id uint, within time.Duration) string {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var o struct {
			State string `json:"state"`
		}
		if err := c.call("GET", fmt.Sprintf("%s/%d.json", coll, id), nil, &o, within); err == nil && o.State != models.StatePending {
			return o.State
		}
		time.Sleep(time.Second)
	}
	return ""
}

// check waits (within) for every operation to end, then checks the invariants; it
// returns a one-line report and the violations.
func (c *chaos) check(acked []ack, within time.Duration) (string, []string) {
	var bad []string
	var ops []models.Operation
	deadline := time.Now().Add(within)
	for {
		ops = nil
		if err := c.db.Order("id").Find(&ops).Error; err != nil {
			bad = append(bad, "read operations: "+err.Error())
			return "", bad
		}
		open := 0
		for _, op := range ops {
			if op.State == models.OpQueued || op.State == models.OpRunning {
				open++
			}
		}
		if open == 0 {
			break
		}
		if c.revive != nil {
			c.revive()
		}
		if time.Now().After(deadline) {
			for _, op := range ops {
				if op.State == models.OpQueued || op.State == models.OpRunning {
					bad = append(bad, fmt.Sprintf("operation %d (%s of %d) still %s %s after recovery: %s", op.ID, op.Kind, op.ObjectID, op.State, within, op.Message))
				}
			}
			break
		}
		time.Sleep(2 * time.Second)
	}
	states := map[string]int{}
	for _, op := range ops {
		states[op.State]++
		if op.State == models.OpFailed && op.Error == "" {
			bad = append(bad, fmt.Sprintf("operation %d (%s) failed without a reason", op.ID, op.Kind))
		}
	}
	tables := map[string]any{"volume": &models.Volume{}, "group": &models.Group{}, "version": &models.GroupVersion{}}
	for _, a := range acked {
		var n int64
		if err := c.db.Model(tables[a.kind]).Where("id = ?", a.id).Count(&n).Error; err != nil || n != 1 {
			bad = append(bad, fmt.Sprintf("acknowledged %s %d is lost (%d rows, %v)", a.kind, a.id, n, err))
		}
	}
	// Datasets against rows.
	var vols []models.Volume
	var groups []models.Group
	var versions []models.GroupVersion
	c.db.Find(&vols)
	c.db.Find(&groups)
	c.db.Find(&versions)
	pool := c.agent.pool
	for _, kind := range []struct {
		root  string
		ready map[uint]bool
		rows  map[uint]bool
	}{{"iscsi/volumes", map[uint]bool{}, map[uint]bool{}}, {"iscsi/groups", map[uint]bool{}, map[uint]bool{}}} {
		if kind.root == "iscsi/volumes" {
			for _, v := range vols {
				kind.rows[v.ID], kind.ready[v.ID] = true, v.State == models.StateReady
			}
		} else {
			for _, g := range groups {
				kind.rows[g.ID], kind.ready[g.ID] = true, g.State == models.StateReady
			}
		}
		have, err := c.agent.datasets(kind.root)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		seen := map[uint]int{}
		for _, ds := range have {
			id, err := strconv.ParseUint(strings.TrimPrefix(ds, kind.root+"/"), 10, 32)
			if err != nil || !kind.rows[uint(id)] {
				bad = append(bad, fmt.Sprintf("orphan dataset %s/%s: no row", pool, ds))
				continue
			}
			seen[uint(id)]++
		}
		for id, ready := range kind.ready {
			if ready && seen[id] != 1 {
				bad = append(bad, fmt.Sprintf("%s/%s/%d is ready but exists %d times on the pool", pool, kind.root, id, seen[id]))
			}
		}
	}
	for _, v := range versions {
		if v.State != models.StateReady {
			continue
		}
		out, err := c.agent.exec(fmt.Sprintf("zfs get -Hp -o value guid %s/iscsi/groups/%d@v%d", pool, v.GroupID, v.Number))
		if err != nil || strings.TrimSpace(out) != v.GUID {
			bad = append(bad, fmt.Sprintf("version %d (group %d v%d): snapshot guid %q, the panel recorded %q (%v)", v.ID, v.GroupID, v.Number, strings.TrimSpace(out), v.GUID, err))
		}
	}
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, fmt.Sprintf("%s %d", k, states[k]))
	}
	slices.Sort(keys)
	report := fmt.Sprintf("operations: %s; %d acknowledged writes, %d volumes, %d groups, %d versions; invariants: %d violations",
		strings.Join(keys, ", "), len(acked), len(vols), len(groups), len(versions), len(bad))
	return report, bad
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
