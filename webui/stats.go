package webui

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
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
