//go:build race

package iscsi_test

// raceEnabled is true under go test -race: load loops shrink to stay in CI time.
const raceEnabled = true
