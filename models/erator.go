package models

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// EratorItem is one entry of a server's erator, as its agent last reported it.
type EratorItem struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	ID     uint   `json:"id"`
	Unix   int64  `json:"unix"`
	Used   uint64 `json:"used"`
	Origin string `json:"origin,omitempty"`
}

// Erator lists a visible server's erator from its last stats.
func (s *Store) Erator(ctx context.Context, a *Actor, serverKey string) ([]EratorItem, error) {
	srv, err := s.FindServer(ctx, a, serverKey)
	if err != nil {
		return nil, err
	}
	var st struct {
		Erator []EratorItem `json:"erator"`
	}
	if srv.Stats != "" {
		_ = json.Unmarshal([]byte(srv.Stats), &st)
	}
	if st.Erator == nil {
		st.Erator = []EratorItem{}
	}
	return st.Erator, nil
}

// PurgeInput is the body of an erator purge: entries deleted longer ago than OlderThan
// (seconds, or a Go duration such as "24h"; 0 purges everything) are destroyed.
type PurgeInput struct {
	OlderThan *string `field:"older_than,age"`
}

// PurgeErator queues the purge of a server's erator. Only a client's admins may purge.
func (s *Store) PurgeErator(ctx context.Context, a *Actor, serverKey string, in *PurgeInput) (*Created, error) {
	age := time.Duration(0)
	if in.OlderThan != nil && strings.TrimSpace(*in.OlderThan) != "" {
		v := strings.TrimSpace(*in.OlderThan)
		d, err := time.ParseDuration(v)
		if err != nil {
			secs, serr := strconv.ParseInt(v, 10, 64)
			if serr != nil || secs > int64(100*365*24*time.Hour/time.Second) {
				return nil, Invalid("older_than", "must be seconds or a duration such as 24h, got %q", v)
			}
			d = time.Duration(secs) * time.Second
		}
		if d < 0 {
			return nil, Invalid("older_than", "must not be negative")
		}
		age = d
	}
	srv, err := s.FindServer(ctx, a, serverKey)
	if err != nil {
		return nil, err
	}
	var op *Operation
	err = s.tx(ctx, func(tx *gorm.DB) error {
		n, err := a.lockNetwork(tx, srv.NetworkID, "")
		if err != nil {
			return err
		}
		if !a.CanAdminClient(n.ClientID) {
			return Forbidden("only the client's admins may purge the erator")
		}
		// An age of 0 purges everything (Before 0): comparing with the panel's clock would
		// keep an entry deleted in this very second, or stamped by a server whose clock
		// runs ahead of the panel's.
		var before int64
		if age > 0 {
			before = time.Now().Add(-age).Unix()
		}
		op, err = newOperation(tx, srv.NetworkID, OpEratorPurge, srv.ID, OperationInput{Before: before})
		if err != nil {
			return err
		}
		return audit(tx, a, &srv.NetworkID, "purge", "server", srv.ID, age.String())
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	return &Created{Object: srv, Operation: op}, nil
}

func restore[T any](ctx context.Context, s *Store, a *Actor, id uint, what, kind string) (*Created, error) {
	var obj *T
	var op *Operation
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if obj, err = getScoped[T](ctx, tx, a.scopeNetworkOwned, id, what); err != nil {
			return err
		}
		var row struct {
			NetworkID uint
			State     string
		}
		if err := tx.Model(new(T)).Select("network_id, state").Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		n, err := a.lockNetwork(tx, row.NetworkID, "")
		if err != nil {
			return err
		}
		if err := preflight(tx, n); err != nil {
			return err
		}
		// Only a deleted object can come back, and only once: two restores racing find
		// one of them updating no row.
		res := tx.Model(new(T)).Where("id = ? AND state = ?", id, StateDeleted).Update("state", StatePending)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return Conflict("", "%s %d is %s, not deleted: there is nothing to restore", what, id, row.State)
		}
		if op, err = newOperation(tx, row.NetworkID, kind, id, OperationInput{}); err != nil {
			return err
		}
		return audit(tx, a, &row.NetworkID, "restore", what, id, "")
	})
	if err != nil {
		return nil, err
	}
	s.launch(ctx, op)
	if fresh, err := getScoped[T](ctx, s.DB, a.scopeNetworkOwned, id, what); err == nil {
		obj = fresh
	}
	return &Created{Object: obj, Operation: op}, nil
}
