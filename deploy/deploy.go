// Package deploy holds what production installs are made of: install.sh (served by the
// panel at /install.sh), the systemd units and example configuration of the panel, the
// tunnel and the agent, and the Grafana dashboard. Each is exercised by a test
// (deploy_test.go here; test/install in a systemd VM).
package deploy

import _ "embed"

// InstallScript is install.sh, the storage server's installer.
//
//go:embed install.sh
var InstallScript []byte
