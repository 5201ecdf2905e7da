package webui

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// statsSection shows what a server's agent last reported as a table of figures, not raw
// JSON: nested objects become "pool · free" rows, byte counts are shown in GiB beside the
// exact number. The JSON stays one link away (stats.json).
func statsSection(s *models.Server) section {
	sec := section{Title: "Stats", Columns: []string{"Figure", "Value"},
		Note: fmt.Sprintf("As the agent last reported them (%s); the same as JSON: /api/v0.9.2/servers/%d/stats.json", ago(s.StatsAt), s.ID)}
	var v any
	if err := json.Unmarshal(s.StatsView().Stats, &v); err != nil {
		return sec
	}
	var rows [][2]string
	flattenStats(nil, v, &rows)
	for _, r := range rows {
		sec.Rows = append(sec.Rows, []cell{{Text: r[0]}, {Text: r[1]}})
	}
	if len(sec.Rows) == 0 {
		sec.Note = "The agent has not reported any stats yet."
	}
	return sec
}

// flattenStats appends one row per leaf of v, named by its path.
func flattenStats(path []string, v any, rows *[][2]string) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			flattenStats(append(slices.Clone(path), k), x[k], rows)
		}
	case []any:
		for i, e := range x {
			flattenStats(append(slices.Clone(path), fmt.Sprint(i+1)), e, rows)
		}
	default:
		if len(path) == 0 {
			return
		}
		*rows = append(*rows, [2]string{statLabel(path), statValue(path[len(path)-1], x)})
	}
}

func statLabel(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = strings.ReplaceAll(p, "_", " ")
	}
	label := strings.Join(parts, " · ")
	return strings.ToUpper(label[:1]) + label[1:]
}

// statValue formats a figure: byte counts (by their name) in GiB as well.
func statValue(key string, v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case float64:
		k := strings.ToLower(key)
		if x >= wire.GiB/100 && (strings.Contains(k, "size") || strings.Contains(k, "free") || strings.Contains(k, "bytes") ||
			strings.Contains(k, "alloc") || strings.Contains(k, "used")) {
			return fmt.Sprintf("%.1f GiB (%.0f bytes)", x/wire.GiB, x)
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return yesNo(x)
	default:
		return fmt.Sprint(x)
	}
}

// chartWindows are the time windows a server's charts can show (?window=).
var chartWindows = []struct {
	Key   string
	Label string
	Span  time.Duration
}{{"1h", "1 h", time.Hour}, {"24h", "24 h", 24 * time.Hour}, {"7d", "7 d", 7 * 24 * time.Hour}}

// defaultWindow is the charts' window when the page names none.
const defaultWindow = "24h"

// windowLink is one choice of the charts' time window.
type windowLink struct {
	Label, Href string
	Current     bool
}

// chartsSection draws a server's stored samples over the chosen window: pool usage,
// iSCSI sessions, boot requests and replication traffic (the last two as rates from the
// agent's counters). An unknown window is refused on the page (422), naming the field.
func chartsSection(r *rc, s *models.Server) section {
	sec := section{Title: "Charts", ID: "charts"}
	key := r.c.Query("window", defaultWindow)
	span := time.Duration(0)
	for _, w := range chartWindows {
		if w.Key == key {
			span = w.Span
		}
	}
	if span == 0 {
		r.c.Status(fiber.StatusUnprocessableEntity)
		sec.Error = fmt.Sprintf("Window: %q is not a time window; choose 1 h, 24 h or 7 d.", key)
		key, span = defaultWindow, 24*time.Hour
	}
	for _, w := range chartWindows {
		sec.Windows = append(sec.Windows, windowLink{Label: w.Label, Href: fmt.Sprintf("/servers/%d?window=%s#charts", s.ID, w.Key), Current: w.Key == key})
	}
	to := time.Now().UTC()
	from := to.Add(-span)
	// One sample before the window gives the counters' first rate inside it.
	samples, err := models.SamplesOf(r.ctx, r.s.DB, s.ID, from.Add(-models.SampleThin))
	if err != nil {
		slog.Error("server samples", "server", s.ID, "err", err)
		sec.Error = "The samples could not be read just now; reload the page to try again."
		return sec
	}
	sec.Note = fmt.Sprintf("%d samples in this window, one per stats report (kept 7 days; one per 10 minutes after a day). The same as JSON: /api/v0.9.2/servers/%d/samples.json?since=%s",
		countFrom(samples, from), s.ID, strings.TrimSuffix(span.String(), "0m0s"))
	var used, sessions, boots, repl []chartPoint
	for i, smp := range samples {
		if smp.PoolSize > 0 {
			used = append(used, chartPoint{smp.At, float64(smp.PoolUsed)})
		}
		if smp.ISCSISessions != nil {
			sessions = append(sessions, chartPoint{smp.At, float64(*smp.ISCSISessions)})
		}
		if i == 0 {
			continue
		}
		prev := samples[i-1]
		if p, ok := counterRate(prev.At, smp.At, prev.BootRequests, smp.BootRequests, time.Minute); ok {
			boots = append(boots, p)
		}
		if p, ok := counterRate(prev.At, smp.At, prev.ReplicationBytes, smp.ReplicationBytes, time.Second); ok {
			repl = append(repl, p)
		}
	}
	count := func(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }
	for _, c := range []chart{
		{ID: "chart-pool", Title: "Pool used", Points: used, Format: bytesFigure},
		{ID: "chart-iscsi", Title: "iSCSI sessions", Points: sessions, Format: count},
		{ID: "chart-boot", Title: "Boot requests per minute", Points: boots, Format: count},
		{ID: "chart-replication", Title: "Replication sent per second", Points: repl, Format: func(v float64) string { return bytesFigure(v) + "/s" }},
	} {
		c.From, c.To = from, to
		sec.Charts = append(sec.Charts, chartFigure{Title: c.Title, SVG: c.svg()})
	}
	return sec
}

func countFrom(samples []models.ServerSample, from time.Time) int {
	n := 0
	for _, s := range samples {
		if !s.At.Before(from) {
			n++
		}
	}
	return n
}

// counterRate is the rate (per unit) of an agent counter between two samples, at the
// later one; a counter that went down means the agent restarted: it counted b since.
func counterRate(ta, tb time.Time, a, b *int64, unit time.Duration) (chartPoint, bool) {
	d := tb.Sub(ta)
	if a == nil || b == nil || d <= 0 {
		return chartPoint{}, false
	}
	inc := *b - *a
	if inc < 0 {
		inc = *b
	}
	return chartPoint{T: tb, V: float64(inc) * float64(unit) / float64(d)}, true
}

// bytesFigure is a byte count in the unit that suits it.
func bytesFigure(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64) + " B"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}
