package webui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// maxStreamOps bounds how many operations one stream follows.
const maxStreamOps = 50

// progressEvent is what the live-progress stream sends for an operation.
type progressEvent struct {
	ID       uint   `json:"id"`
	State    string `json:"state"`
	Step     string `json:"step"`
	Percent  int    `json:"percent"`
	Message  string `json:"message"`
	Error    string `json:"error"`
	Finished bool   `json:"finished"`
	Workflow string `json:"workflow_url,omitempty"` // the Temporal Web UI, once the workflow is known
}

// events streams the progress of the operations named by ?id= (server-sent events): an
// "op" event whenever one changes, read from the database every PollInterval, and "end"
// once all have finished. A stream lasts at most StreamLifetime; the browser's EventSource
// then reconnects by itself. Operations the caller may not see are refused up front.
func (u *UI) events(c *fiber.Ctx) error {
	a := actorOf(c)
	var ids []uint
	for _, raw := range c.Context().QueryArgs().PeekMulti("id") {
		n, err := strconv.ParseUint(string(raw), 10, 32)
		if err != nil || n == 0 {
			return models.Invalid("id", "must be an operation id")
		}
		if len(ids) == maxStreamOps {
			return models.Invalid("id", "at most %d operations per stream", maxStreamOps)
		}
		ids = append(ids, uint(n))
	}
	if len(ids) == 0 {
		return models.Invalid("id", "is required")
	}
	for _, id := range ids {
		if _, err := u.store.Operation(c.UserContext(), a, id); err != nil {
			return err
		}
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	// The server's done channel closes when it starts shutting down: streams end then, so
	// the shutdown does not wait for them.
	store, poll, lifetime, done, wfURL := u.store, u.opts.PollInterval, u.opts.StreamLifetime, c.Context().Done(), u.workflowURL
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		ctx, cancel := context.WithTimeout(context.Background(), lifetime)
		defer cancel()
		tick := time.NewTicker(poll)
		defer tick.Stop()
		last := map[uint]progressEvent{}
		fmt.Fprint(w, "retry: 2000\n\n")
		for n := 0; ; n++ {
			finished := 0
			for _, id := range ids {
				op, err := store.Operation(ctx, a, id)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					finished++ // deleted since, or no longer visible: nothing more to follow
					continue
				}
				ev := progressEvent{ID: op.ID, State: op.State, Step: op.Step, Percent: op.Percent, Message: op.Message, Error: op.Error, Finished: op.Finished(), Workflow: wfURL(op)}
				if prev, ok := last[id]; !ok || prev != ev {
					b, _ := json.Marshal(ev)
					fmt.Fprintf(w, "event: op\ndata: %s\n\n", b)
					last[id] = ev
				}
				if ev.Finished {
					finished++
				}
			}
			if finished == len(ids) {
				fmt.Fprint(w, "event: end\ndata: {}\n\n")
				_ = w.Flush()
				return
			}
			if n%20 == 0 {
				fmt.Fprint(w, ": keep-alive\n\n") // also how a closed browser tab is noticed
			}
			if err := w.Flush(); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return nil
}
