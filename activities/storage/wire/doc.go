// Package wire is the contract between the panel and its agents: every message they
// exchange over HTTP, the Temporal names and payloads the agent uses to reach the panel's
// workflows, the identity an agent's certificate carries, and the agent's one HTTP client
// of the panel.
//
// Both ends import it and neither imports the other: the agent links no database or web
// framework, the panel no iSCSI target. It uses the standard library only. A diff here is
// a protocol change: an agent and a panel of different versions must still understand
// each other (add fields, never rename or retype one; JSON names are the wire's, Go
// names may follow them).
//
// Files: agent.go (registration, certificates, stats, errors, paths), boot.go (the boot
// path: query, answer, reports, exports, provisioning), temporal.go (task queues, the
// device workflow's names and payloads), identity.go (what an agent certificate names),
// normalize.go (MAC and UUID spelling), client.go (the agent's client of the panel).
package wire
