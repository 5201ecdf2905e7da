package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/clusterducks/clusterducks/activities/panel/pki"
	"github.com/clusterducks/clusterducks/models"
	"github.com/clusterducks/clusterducks/test/harness"
	"github.com/clusterducks/clusterducks/workers/panel"
	"github.com/clusterducks/clusterducks/workers/storage"
	"github.com/clusterducks/clusterducks/workers/temporalclient"
	"github.com/gofiber/fiber/v2"
)

// On both databases: two panels making the CA at once keep one, and an agent registering
// gets a certificate from that CA, which the panel records; restarted, it keeps it.
func TestAgentCertificateDatabases(t *testing.T) {
	for _, driver := range harness.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			// The agent endpoints, as `clusterducks panel` mounts them.
			agents := func(app *fiber.App, store *models.Store) {
				panel.NewAgents(store, temporalclient.Config{}).Mount(app, store)
			}
			p := startPanel(t, driver, agents)
			db := p.DB
			var wg sync.WaitGroup
			cas := make([]*models.PanelCA, 2)
			errs := make([]error, 2)
			for i := range cas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cas[i], errs[i] = models.LoadPanelCA(ctx, db, func() (string, string, error) { return pki.New(time.Now()) })
				}()
			}
			wg.Wait()
			if errors.Join(errs...) != nil || cas[0].CertPEM != cas[1].CertPEM {
				t.Fatalf("two panels making the CA at once: %v; same CA %v", errors.Join(errs...), cas[0] != nil && cas[1] != nil && cas[0].CertPEM == cas[1].CertPEM)
			}

			n := id(p.must(201, p.Admin, "POST", "/api/v0.9.2/networks.json", map[string]any{"Name": "N", "Client": 1}))
			srv := p.must(201, p.Admin, "POST", "/api/v0.9.2/servers.json", map[string]any{"Name": "s1", "network": n, "IP": "10.0.0.1", "Pool": "tank"})
			key, _ := srv["key"].(string)
			cfg := storage.Config{Panel: p.URL, Key: key, StateDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			_, first, err := storage.Register(ctx, cfg)
			if err != nil || first == nil {
				t.Fatalf("register: %v, certificate %v", err, first)
			}
			_, again, err := storage.Register(ctx, cfg)
			if err != nil || again == nil || !again.Equal(first) {
				t.Fatalf("restart: %v, the same certificate %v", err, again != nil && again.Equal(first))
			}
			certs, err := models.AgentCerts(ctx, db, uint(id(srv)))
			if err != nil || len(certs) != 1 || certs[0].Serial != first.SerialNumber.Text(16) {
				t.Fatalf("issued: %+v, %v", certs, err)
			}
		})
	}
}
