package models

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// Lists are searched and sorted in the database, so they work at any size, through one
// table per listed kind: the columns a text search looks in, and the sort keys (the
// lower-case column titles of the dashboard's lists, and the API's ?sort=) with the
// column each orders by. A kind without an entry lists in id order and ignores no ?q.
type listSpec struct {
	search []string
	sort   map[string]string
	// filter: the ?key=value filters (ListFilterKeys) and the column each matches.
	filter map[string]string
}

// ListFilterKeys are the query parameters a list may be filtered by: an id (0 or "none":
// without one) or, for locked and compliant, true or false.
var ListFilterKeys = []string{"group_id", "server_id", "version_id", "locked", "compliant"}

var listSpecs = map[string]listSpec{
	"clients":  {search: []string{"name"}, sort: map[string]string{"name": "name", "max_networks": "max_networks"}},
	"users":    {search: []string{"email", "name"}, sort: map[string]string{"e-mail": "email", "email": "email", "name": "name", "role": "role", "client": "client_id"}},
	"networks": {search: []string{"name"}, sort: map[string]string{"name": "name", "client": "client_id"}},
	"tunnels":  {search: []string{"alias", "ip", "status"}, sort: map[string]string{"alias": "alias", "ip": "ip", "network": "network_id", "status": "status"}},
	"servers": {search: []string{"name", "ip", "replication_ip", "pool", "status"}, sort: map[string]string{"name": "name", "network": "network_id", "role": "role",
		"iscsi_ip": "ip", "replication_ip": "replication_ip", "pool": "pool", "tunnel_port": "tunnel_port", "status": "status"}},
	"volumes": {search: []string{"alias", "state"}, sort: map[string]string{"alias": "alias", "network": "network_id", "size_(gib)": "size_gib", "vol_size": "size_gib", "state": "state", "maintenance": "maintenance"}},
	"groups": {search: []string{"name", "state"}, sort: map[string]string{"name": "name", "network": "network_id", "volume": "volume_id", "strict_versioning": "strict_versioning",
		"lazy_locks": "lazy_locks", "state": "state", "maintenance": "maintenance"}},
	"devices": {search: []string{"name", "mac", "uuid"}, sort: map[string]string{"name": "name", "mac": "mac", "network": "network_id", "group": "group_id", "lock": "locked", "locked": "locked", "last_boot": "last_boot_at",
		"server": "server_id", "version": "clone_version_id"},
		filter: map[string]string{"group_id": "group_id", "server_id": "server_id", "version_id": "clone_version_id", "locked": "locked",
			"compliant": "clone_version_id"}},
	"menus": {search: []string{"name"}, sort: map[string]string{"name": "name", "network": "network_id"}},
}

// filterCompliant keeps the devices that are (or are not) on their group's assigned
// version, as GroupCompliance judges them: a device of a strict group that assigns a
// version is compliant only when its disk (cloneCol) is a clone of that version; every
// other device is compliant. The assignments are worked out in Go (AssignedVersion, the
// one rule) from the strict groups' ready versions, then matched in the query as
// (group, version) pairs, so the filter pages and counts in the database at any size.
func filterCompliant(q *gorm.DB, cloneCol string, compliant bool) (*gorm.DB, error) {
	db := q.Session(&gorm.Session{NewDB: true})
	var groups []Group
	if err := db.Where("strict_versioning = ?", true).Find(&groups).Error; err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	var pairs [][]any
	var strict []uint
	if len(groups) > 0 {
		ids := make([]uint, len(groups))
		for i, g := range groups {
			ids[i] = g.ID
		}
		var ready []GroupVersion
		if err := db.Where("group_id IN ? AND state = ?", ids, StateReady).Find(&ready).Error; err != nil {
			return nil, fmt.Errorf("compliance: %w", err)
		}
		byGroup := map[uint][]GroupVersion{}
		for _, v := range ready {
			byGroup[v.GroupID] = append(byGroup[v.GroupID], v)
		}
		for i := range groups {
			if v := AssignedVersion(&groups[i], byGroup[groups[i].ID]); v != nil {
				strict = append(strict, groups[i].ID)
				pairs = append(pairs, []any{groups[i].ID, v.ID})
			}
		}
	}
	// A disk without a version (none yet) counts as 0: never the assigned one.
	onAssigned := "(group_id, COALESCE(" + cloneCol + ", 0)) IN ?"
	switch {
	case len(strict) == 0 && compliant:
		return q, nil
	case len(strict) == 0:
		return q.Where("1 = 0"), nil
	case compliant:
		return q.Where("(group_id IS NULL OR group_id NOT IN ? OR "+onAssigned+")", strict, pairs), nil
	default:
		return q.Where("group_id IN ? AND NOT "+onAssigned, strict, pairs), nil
	}
}

// SortKey turns a list's column title into its sort key ("Size (GiB)" → "size_(gib)").
func SortKey(title string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(title)), " ", "_")
}

// CanSort reports whether the list of table (e.g. "devices") sorts by key.
func CanSort(table, key string) bool {
	_, ok := listSpecs[table].sort[strings.TrimPrefix(key, "-")]
	return ok
}

// searchAndSort applies a page's text search and sort to a query on table: the search
// matches any of the table's text columns, case-insensitively, as a substring; the sort
// ("name", or "-name" for descending) must be one of the table's keys (422 naming sort).
func searchAndSort(q *gorm.DB, table string, p Page) (*gorm.DB, error) {
	spec := listSpecs[table]
	for _, key := range ListFilterKeys {
		v, ok := p.Filters[key]
		if !ok {
			continue
		}
		col, ok := spec.filter[key]
		if !ok {
			return nil, Invalid(key, "this list is not filtered by %s", key)
		}
		v = strings.ToLower(strings.TrimSpace(v))
		switch {
		case key == "compliant":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, Invalid(key, "must be true or false")
			}
			if q, err = filterCompliant(q, col, b); err != nil {
				return nil, err
			}
		case key == "locked":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, Invalid(key, "must be true or false")
			}
			q = q.Where(col+" = ?", b)
		case v == "0" || v == "none":
			q = q.Where(col + " IS NULL")
		default:
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, Invalid(key, "must be an id (0 or none: without one)")
			}
			q = q.Where(col+" = ?", n)
		}
	}
	if s := strings.TrimSpace(p.Q); s != "" && len(spec.search) > 0 {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(s)) + "%"
		var conds []string
		var args []any
		for _, col := range spec.search {
			conds = append(conds, "LOWER("+col+`) LIKE ? ESCAPE '\'`)
			args = append(args, like)
		}
		q = q.Where("("+strings.Join(conds, " OR ")+")", args...)
	}
	if p.Sort != "" {
		key := strings.TrimPrefix(p.Sort, "-")
		col, ok := spec.sort[key]
		if !ok {
			keys := make([]string, 0, len(spec.sort))
			for k := range spec.sort {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if len(keys) == 0 {
				return nil, Invalid("sort", "this list has a fixed order")
			}
			return nil, Invalid("sort", "must be one of %s (a leading - sorts descending)", strings.Join(keys, ", "))
		}
		dir := ""
		if strings.HasPrefix(p.Sort, "-") {
			dir = " DESC"
		}
		q = q.Order(col + dir)
	}
	return q, nil
}
