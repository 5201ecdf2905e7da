package panel

import (
	"context"
	"log/slog"
	"time"

	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/workflows"
	"go.temporal.io/sdk/client"
)

// OnAccess returns the hook that mails a user when its account is accessed (a dashboard
// login, or an API token used from a new address), through the Notify workflow. It does
// nothing while SMTP is not configured, and never delays the request: the workflow is
// started in the background with a bounded wait. A panel without Temporal (nil) has none.
func (t *Temporal) OnAccess(store *models.Store) func(a *models.Actor, how, ip string) {
	if t == nil {
		return nil
	}
	return func(a *models.Actor, how, ip string) {
		user := a.User
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if !models.SMTPReady(ctx, store.DB) {
				return
			}
			st, _ := models.LoadSettings(ctx, store.DB)
			now := time.Now()
			subject, body := models.AccessNotice(&user, how, ip, now, st.PanelHostname)
			_, err := t.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:        workflows.NotifyID("access", user.ID, now.UnixNano()),
				TaskQueue: workflows.PanelQueue,
			}, workflows.Notify, workflows.NotifyInput{UserID: user.ID, Subject: subject, Body: body})
			if err != nil {
				slog.Warn("access notification not started", "user", user.ID, "err", err)
			}
		}()
	}
}
