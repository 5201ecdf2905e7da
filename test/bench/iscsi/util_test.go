//go:build bench

package iscsibench

import (
	"runtime"
	"slices"
	"time"
)

func sortSlice(d []time.Duration) { slices.Sort(d) }

func numCPU() int { return runtime.NumCPU() }
