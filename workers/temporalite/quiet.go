package temporalite

import (
	"sync/atomic"

	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// stopQuiet is the server's logger that falls silent on warnings and errors once the
// server is being stopped: its services then log every peer that already left ("Not
// enough hosts to serve the request", with stack traces) although nothing is wrong, and
// an operator's Ctrl-C must end quietly. Until the stop, everything passes through.
type stopQuiet struct {
	tlog.Logger
	stopping *atomic.Bool
}

func newStopQuiet(l tlog.Logger) *stopQuiet { return &stopQuiet{Logger: l, stopping: new(atomic.Bool)} }

// With keeps child loggers (each service makes its own) behind the same switch.
func (l *stopQuiet) With(tags ...tag.Tag) tlog.Logger {
	return &stopQuiet{Logger: tlog.With(l.Logger, tags...), stopping: l.stopping}
}

func (l *stopQuiet) Warn(msg string, tags ...tag.Tag) {
	if !l.stopping.Load() {
		l.Logger.Warn(msg, tags...)
	}
}

func (l *stopQuiet) Error(msg string, tags ...tag.Tag) {
	if !l.stopping.Load() {
		l.Logger.Error(msg, tags...)
	}
}
