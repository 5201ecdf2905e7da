package models

import (
	"testing"
	"time"
)

func TestPercentileMS(t *testing.T) {
	ms := []int64{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}
	if got := percentileMS(ms, 50); got != 500*time.Millisecond {
		t.Fatalf("p50 = %v", got)
	}
	if got := percentileMS(ms, 95); got != time.Second {
		t.Fatalf("p95 = %v", got)
	}
	if got := percentileMS(nil, 95); got != 0 {
		t.Fatalf("empty p95 = %v", got)
	}
	if r := (BootStats{Up: 3, Failed: 1}).SuccessRate(); r != 0.75 {
		t.Fatalf("rate = %v", r)
	}
}
