package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// VisibleNetworkIDs is a subquery of the ids of the networks the actor may see: all for a
// super-admin, its client's networks and the networks delegated to it otherwise.
func (a *Actor) VisibleNetworkIDs(db *gorm.DB) *gorm.DB {
	q := db.Session(&gorm.Session{NewDB: true}).Model(&Network{}).Select("id")
	if a.SuperAdmin() {
		return q
	}
	delegated := db.Session(&gorm.Session{NewDB: true}).Model(&Delegation{}).Select("network_id").Where("user_id = ?", a.ID)
	return q.Where("client_id = ? OR id IN (?)", a.ClientID, delegated)
}

// scopeNetworks limits a query on networks to those the actor sees.
func (a *Actor) scopeNetworks(db *gorm.DB) *gorm.DB {
	if a.SuperAdmin() {
		return db
	}
	return db.Where("id IN (?)", a.VisibleNetworkIDs(db))
}

// scopeNetworkOwned limits a query on a network-owned table to the actor's networks.
func (a *Actor) scopeNetworkOwned(db *gorm.DB) *gorm.DB {
	if a.SuperAdmin() {
		return db
	}
	return db.Where("network_id IN (?)", a.VisibleNetworkIDs(db))
}

// scopeClients limits a query on clients: a super-admin sees all, others their own.
func (a *Actor) scopeClients(db *gorm.DB) *gorm.DB {
	if a.SuperAdmin() {
		return db
	}
	return db.Where("id = ?", a.ClientID)
}

// scopeUsers limits a query on users: a super-admin sees all, others their client's users.
func (a *Actor) scopeUsers(db *gorm.DB) *gorm.DB {
	if a.SuperAdmin() {
		return db
	}
	return db.Where("client_id = ?", a.ClientID)
}

// CanAdminClient reports whether the actor manages the given client's users and networks.
func (a *Actor) CanAdminClient(clientID uint) bool {
	return a.SuperAdmin() || (a.Role == RoleAdmin && a.ClientID == clientID)
}

// Page selects a window of a list.
type Page struct {
	Page    int
	PerPage int
	Q       string // text search (lists with searchable columns, models/search.go)
	Sort    string // a sort key of the list, "-key" descending (models/search.go)
	// Filters are exact-match filters by key (ListFilterKeys), each one the list declares
	// (models/search.go); a key the list has not is 422 naming it.
	Filters map[string]string
}

// Normalize applies the defaults (page 1, 50 per page) and bounds (at most 500 per page).
func (p Page) Normalize() Page {
	if p.Page < 1 {
		p.Page = 1
	}
	if p.PerPage < 1 {
		p.PerPage = 50
	}
	if p.PerPage > 500 {
		p.PerPage = 500
	}
	return p
}

// listScoped returns one page of T under a scope, ordered by id, and the total count.
func listScoped[T any](ctx context.Context, db *gorm.DB, scope func(*gorm.DB) *gorm.DB, p Page, where ...any) ([]T, int64, error) {
	p = p.Normalize()
	q := scope(db.WithContext(ctx).Model(new(T)))
	if len(where) > 0 {
		q = q.Where(where[0], where[1:]...)
	}
	if p.Q != "" || p.Sort != "" || len(p.Filters) > 0 {
		stmt := &gorm.Statement{DB: db}
		if err := stmt.Parse(new(T)); err != nil {
			return nil, 0, fmt.Errorf("list: %w", err)
		}
		var err error
		if q, err = searchAndSort(q, stmt.Schema.Table, p); err != nil {
			return nil, 0, err
		}
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count: %w", err)
	}
	items := make([]T, 0)
	// A page past the last is empty (and its offset, which could overflow, is never computed).
	if p.Page > 1 && int64(p.Page-1) >= (total+int64(p.PerPage)-1)/int64(p.PerPage) {
		return items, total, nil
	}
	if err := q.Order("id").Offset((p.Page - 1) * p.PerPage).Limit(p.PerPage).Find(&items).Error; err != nil {
		return nil, 0, fmt.Errorf("list: %w", err)
	}
	return items, total, nil
}

// getScoped loads one T by id under a scope; absent and invisible are both NotFound(what).
func getScoped[T any](ctx context.Context, db *gorm.DB, scope func(*gorm.DB) *gorm.DB, id uint, what string) (*T, error) {
	v := new(T)
	err := scope(db.WithContext(ctx).Model(new(T))).Where("id = ?", id).Take(v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, NotFound(what)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	return v, nil
}

// lockNetwork loads a visible network inside a transaction and, on PostgreSQL, locks its
// row, so that limit checks and inserts of its children are serialised (SQLite
// transactions already hold the database's write lock from their start).
func (a *Actor) lockNetwork(tx *gorm.DB, id uint, field string) (*Network, error) {
	q := forUpdate(a.scopeNetworks(tx.Model(&Network{})))
	var n Network
	err := q.Where("id = ?", id).Take(&n).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, &NotFoundFieldError{Field: field, What: "network"}
	}
	if err != nil {
		return nil, fmt.Errorf("load network: %w", err)
	}
	return &n, nil
}

// forUpdate makes a query inside a transaction lock the rows it reads until the
// transaction ends, on PostgreSQL; SQLite transactions already hold the database's write
// lock from their start.
func forUpdate(q *gorm.DB) *gorm.DB {
	if q.Dialector.Name() == "postgres" {
		return q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return q
}

// NotFoundFieldError is a reference in a request body to an object that is absent or not
// visible (HTTP 404, naming the field).
type NotFoundFieldError struct {
	Field string
	What  string
}

func (e *NotFoundFieldError) Error() string { return e.What + " not found" }

func (e *NotFoundFieldError) Unwrap() error { return ErrNotFound }

// checkLimit refuses an insert that would pass a network limit (0 = unlimited).
func checkLimit(tx *gorm.DB, model any, networkID uint, max int, what, limit string) error {
	if max <= 0 {
		return nil
	}
	var n int64
	if err := tx.Model(model).Where("network_id = ?", networkID).Count(&n).Error; err != nil {
		return fmt.Errorf("count %s: %w", what, err)
	}
	if n >= int64(max) {
		return Conflict(limit, "the network's limit of %d %s is reached (%s)", max, what, limit)
	}
	return nil
}

// refInNetwork checks that an optional reference (0 = none) names an object of the network.
func refInNetwork(tx *gorm.DB, model any, id *uint, networkID uint, field, what string) error {
	if id == nil || *id == 0 {
		return nil
	}
	var n int64
	if err := tx.Model(model).Where("id = ? AND network_id = ?", *id, networkID).Count(&n).Error; err != nil {
		return fmt.Errorf("check %s: %w", field, err)
	}
	if n == 0 {
		return Invalid(field, "%s %d is not in network %d", what, *id, networkID)
	}
	return nil
}
