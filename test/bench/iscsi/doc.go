// Package iscsibench compares our iSCSI target with Debian's tgtd on the same
// file with the same client. The benchmark is behind the bench build tag so
// go test ./... does not run it:
//
//	go test -tags bench -run TestBenchVsTgtd -v -count=1 -timeout 30m ./test/bench/iscsi/
//
// Every pattern runs ISCSI_BENCH_RUNS times per target (default 5), the
// targets alternating, and the tables report medians with their spread.
// ISCSI_BENCH_SECONDS sets the seconds per run (default 2), ISCSI_BENCH_ONLY
// runs only the patterns whose name contains it, and ISCSI_BENCH_WRITE=1
// appends the run to RESULTS.md.
package iscsibench
