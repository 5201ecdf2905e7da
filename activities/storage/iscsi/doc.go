// Package iscsi is an in-process iSCSI target (RFC 7143) serving files and
// block devices (zvols) to network-booting machines. It has no global state:
// the storage agent owns one Server and hands it to the activities that add
// and remove targets.
//
// # Use
//
//	srv := iscsi.NewServer(iscsi.Config{Logger: log})
//	err := srv.AddTarget(iscsi.TargetConfig{
//		IQN:               "iqn.2026-11.dev.clusterducks:host1",
//		LUNs:              []iscsi.LUNConfig{{Path: "/dev/zvol/tank/host1", ReadOnly: false}},
//		AllowedInitiators: []string{"iqn.2010-04.org.ipxe:<uuid>"}, // empty: anyone
//		CHAP:              &iscsi.CHAPConfig{User: "u", Secret: "s"},  // optional
//	})
//	ln, _ := net.Listen("tcp", "10.0.0.1:3260") // the caller owns the listener
//	go srv.Serve(ln)                            // returns ErrServerClosed after Shutdown
//	...
//	srv.RemoveTarget("iqn.2026-11.dev.clusterducks:host1")
//	stats := srv.Stats()
//	srv.Shutdown(ctx)
//
// AddTarget and RemoveTarget (and AddLUN, RemoveLUN) are safe to repeat: adding
// the same configuration again or removing something absent is a no-op, so
// activities can retry them. AddTarget with a different configuration under an
// existing name returns ErrTargetExists.
//
// # Protocol
//
// Login with text negotiation (the initiator's MaxRecvDataSegmentLength,
// FirstBurst/MaxBurstLength, ImmediateData, InitialR2T, CRC32C digests),
// one-way and mutual CHAP (MD5), discovery sessions with SendTargets (filtered
// by ACL), session reinstatement and TSIH reuse. Full feature phase with
// CmdSN/ExpCmdSN/MaxCmdSN windows (gaps held, out-of-window commands ignored),
// immediate and non-immediate NOP-Out, NOP-In pings of idle initiators, R2T
// and unsolicited data, Data-In with phase-collapsed status, residuals, task
// management (abort task, abort/clear task set, LUN reset, target reset),
// logout, and Async Message logout requests when a target is removed or the
// server shuts down. One connection per session, ErrorRecoveryLevel 0: SNACK
// is rejected and a protocol error fails the connection.
//
// # SCSI
//
// SBC-3/SPC-4 commands for disks: INQUIRY (standard, VPD 0x00 0x80 0x83 0xB0
// 0xB1 0xB2), READ CAPACITY 10/16, READ/WRITE 6/10/12/16, WRITE AND VERIFY,
// VERIFY (with byte compare), COMPARE AND WRITE, ORWRITE, SYNCHRONIZE CACHE
// (fdatasync; FUA writes too), PRE-FETCH, WRITE SAME 10/16 and UNMAP that
// punch holes (thin provisioned, LBPRZ), SANITIZE BLOCK ERASE (punches the
// whole LUN before returning status) and EXIT FAILURE MODE (a no-op; OVERWRITE
// and CRYPTO ERASE are not implemented), GET LBA STATUS, MODE SENSE 6/10 (WP
// for read-only LUNs), MODE SELECT 6/10 (only the control page's software
// write protect changes: writes then end in DATA PROTECT), REPORT LUNS, REQUEST SENSE, START STOP UNIT, PREVENT
// ALLOW, REPORT SUPPORTED OPERATION CODES and TMFs, READ DEFECT DATA, RESERVE/
// RELEASE 6/10 and persistent reservations. Anything else ends in CHECK
// CONDITION, ILLEGAL REQUEST; a panic in a connection is recovered, counted
// (RecoveredPanics) and costs only that connection.
//
// # Resources
//
// One goroutine per connection; commands run in order as they arrive. Input
// is read 64 KiB at a time from a pooled buffer while data streams in and
// through a 512-byte buffer when the initiator is quiet. Reads
// are pread(2) into pooled 1 MiB buffers and written with writev(2) (or
// sendfile(2) with Config.Sendfile; measured slower for single-session
// sequential reads on loopback, see test/bench/iscsi). Writes stream from the
// socket to the LUN. Buffered Data-Out is bounded per connection (16 MiB,
// TASK SET FULL beyond) and idle sessions hold no I/O buffers.
//
// # Observability
//
// Stats returns per-target sessions, logins, login failures, commands,
// errors, bytes read and written and a latency histogram. Logs go to the
// Config.Logger: one Info line per session start and end and per target added
// or removed; per-command lines only at Debug level.
package iscsi
