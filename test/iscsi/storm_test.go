package iscsi_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/storage/iscsi"
	"github.com/clusterducks/clusterducks/test/iscsi/initiator"
)

// TestLoginStorm: 32 initiators log in, log out and drop connections while 4
// others write and verify data, and targets and LUNs are added and removed,
// for 60 s under -race (15 s without; ISCSI_STORM_DURATION overrides). The
// I/O sessions must see no error and no mismatch; the target no panic; at the
// end no session or connection is left.
func TestLoginStorm(t *testing.T) {
	dur := 15 * time.Second
	if raceEnabled {
		dur = 60 * time.Second
	}
	if v, err := time.ParseDuration(os.Getenv("ISCSI_STORM_DURATION")); err == nil {
		dur = v
	}
	srv, addr := startOurs(t, iscsi.Config{})
	ioDisk := newDisk(t, "io.img", 64<<20)
	churnDisk := newDisk(t, "churn.img", 16<<20)
	const ioIQN = "iqn.2026-11.dev.clusterducks:storm-io"
	if err := srv.AddTarget(iscsi.TargetConfig{IQN: ioIQN, LUNs: []iscsi.LUNConfig{{Path: ioDisk}}}); err != nil {
		t.Fatal(err)
	}
	churn := func(i int) string { return fmt.Sprintf("iqn.2026-11.dev.clusterducks:storm-churn-%d", i) }
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	var logins, loginErrs, ioOps, adminOps atomic.Int64
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}

	// Admin: add and remove churn targets and their LUNs.
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		for ctx.Err() == nil {
			i := r.IntN(4)
			switch r.IntN(4) {
			case 0, 1:
				srv.AddTarget(iscsi.TargetConfig{IQN: churn(i), LUNs: []iscsi.LUNConfig{{Path: churnDisk}}})
			case 2:
				srv.RemoveTarget(churn(i))
			case 3:
				srv.AddLUN(churn(i), 1, iscsi.LUNConfig{Path: churnDisk, ReadOnly: true})
				srv.RemoveLUN(churn(i), 1)
			}
			srv.Stats()
			adminOps.Add(1)
			time.Sleep(time.Duration(r.IntN(5)) * time.Millisecond)
		}
	}()

	// I/O: each writer owns a 1 MiB region of the I/O target and verifies it.
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := initiator.Dial(context.Background(), addr, initiator.Options{
				InitiatorName: fmt.Sprintf("iqn.2026-11.dev.clusterducks:storm-io-%d", w), TargetName: ioIQN})
			if err != nil {
				report(err)
				return
			}
			defer s.Logout(context.Background())
			r := rand.New(rand.NewPCG(uint64(w), 7))
			buf := make([]byte, 256<<10)
			got := make([]byte, len(buf))
			base := uint64(w) * 2048
			for ctx.Err() == nil {
				size := (1 + r.IntN(len(buf)/512)) * 512
				lba := base + uint64(r.IntN(2048-size/512+1))
				for i := range size {
					buf[i] = byte(r.Uint32())
				}
				opCtx, c := context.WithTimeout(context.Background(), 30*time.Second)
				if err := s.Write(opCtx, 0, lba, 512, buf[:size], false); err != nil {
					c()
					report(fmt.Errorf("io writer %d: %w", w, err))
					return
				}
				if err := s.Read(opCtx, 0, lba, 512, got[:size]); err != nil {
					c()
					report(fmt.Errorf("io reader %d: %w", w, err))
					return
				}
				c()
				if !bytes.Equal(buf[:size], got[:size]) {
					report(fmt.Errorf("io worker %d: data mismatch at LBA %d", w, lba))
					return
				}
				ioOps.Add(1)
			}
		}()
	}

	// 32 initiators churning sessions.
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			buf := make([]byte, 64<<10)
			for i := 0; ctx.Err() == nil; i++ {
				target := ioIQN
				if r.IntN(2) == 0 {
					target = churn(r.IntN(4))
				}
				opCtx, c := context.WithTimeout(context.Background(), 20*time.Second)
				s, err := initiator.Dial(opCtx, addr, initiator.Options{
					InitiatorName: fmt.Sprintf("iqn.2026-11.dev.clusterducks:storm-%d", w), TargetName: target,
					ISID:   [6]byte{0x80, 1, 0, byte(w), byte(i >> 8), byte(r.IntN(3))},
					Dialer: loopbackDialer(w*1000 + i%1000),
				})
				logins.Add(1)
				if err != nil {
					loginErrs.Add(1)
					c()
					continue
				}
				switch r.IntN(4) {
				case 0:
					s.Logout(opCtx)
				case 1:
					s.Abort()
				case 2:
					s.Read(opCtx, 0, 0, 512, buf)
					s.Abort()
				case 3:
					s.Ping(opCtx)
					s.Read(opCtx, 0, uint64(r.IntN(1000)), 512, buf[:4096])
					s.Logout(opCtx)
				}
				c()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%v: %d logins (%d refused: removed targets), %d verified I/Os, %d admin operations",
		dur, logins.Load(), loginErrs.Load(), ioOps.Load(), adminOps.Load())
	if ioOps.Load() == 0 || logins.Load()-loginErrs.Load() < 100 {
		t.Errorf("the storm did too little work")
	}
	waitIdle(t, srv)
	if n := srv.SessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	if n := srv.RecoveredPanics(); n != 0 {
		t.Errorf("%d panics", n)
	}
}
