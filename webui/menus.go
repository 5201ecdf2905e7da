package webui

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/clusterducks/clusterducks/models"
)

// A menu's items are edited as rows of a table (type, label, group, URL), not as JSON: the
// form posts each column as a repeated field, and menuRows turns them into the "items" the
// models decode, so the API and the page share one validation.

// itemRow is one row of the menu item editor.
type itemRow struct {
	N                         int
	Type, Label, GroupID, URL string
}

// blankItemRows is how many empty rows the editor offers (a save offers them again).
const blankItemRows = 3

var itemColumns = []string{"item_type", "item_label", "item_group_id", "item_url"}

// menuItemRows are the editor's rows for items, followed by blank ones.
func menuItemRows(items []models.MenuItem) []itemRow {
	rows := make([]itemRow, 0, len(items)+blankItemRows)
	for _, it := range items {
		g := ""
		if it.GroupID != 0 {
			g = utoa(it.GroupID)
		}
		rows = append(rows, itemRow{Type: it.Type, Label: it.Label, GroupID: g, URL: it.URL})
	}
	for range blankItemRows {
		rows = append(rows, itemRow{})
	}
	for i := range rows {
		rows[i].N = i + 1
	}
	return rows
}

// postedItemRows reads the editor's rows back from a submitted form, blank ones dropped.
func postedItemRows(v url.Values) []itemRow {
	cols := make([][]string, len(itemColumns))
	n := 0
	for i, c := range itemColumns {
		cols[i] = v[c]
		n = max(n, len(cols[i]))
	}
	at := func(col, i int) string {
		if i < len(cols[col]) {
			return strings.TrimSpace(cols[col][i])
		}
		return ""
	}
	var rows []itemRow
	for i := range n {
		r := itemRow{Type: at(0, i), Label: at(1, i), GroupID: at(2, i), URL: at(3, i)}
		if r.Label == "" && r.URL == "" && r.GroupID == "" {
			continue // a blank row (its type select always sends a value)
		}
		rows = append(rows, r)
	}
	return rows
}

// menuRows replaces the editor's columns in a submitted form with the "items" JSON the
// models decode; a group that is not a number is left for the models to refuse by item.
func menuRows(v url.Values) url.Values {
	if _, ok := v["item_type"]; !ok {
		return v // a form without the editor (a script posting items as JSON)
	}
	items := []map[string]any{}
	for _, r := range postedItemRows(v) {
		it := map[string]any{"type": r.Type, "label": r.Label}
		if r.GroupID != "" {
			g, err := strconv.ParseUint(r.GroupID, 10, 32)
			if err != nil {
				g = 0
			}
			it["group_id"] = g
		}
		if r.URL != "" {
			it["url"] = r.URL
		}
		items = append(items, it)
	}
	b, _ := json.Marshal(items)
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	for _, c := range itemColumns {
		delete(out, c)
	}
	out.Set("items", string(b))
	return out
}
