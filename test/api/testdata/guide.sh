#!/usr/bin/env bash
# The getting-started guide's curl examples, verbatim but for the panel's address
# (https://panel.example.com in the guide is ${PANEL} here). Each must answer 2xx.
set -euo pipefail
: "${PANEL:?}" "${API_TOKEN:?}"
post() { # collection, body: the guide's exact command, with -f to fail on 4xx/5xx
    curl -sfH "Authorization: Token token=\"${API_TOKEN}\"" -H 'Content-Type: application/json' \
        -X POST "${PANEL}/api/v0.9.2/$1.json" \
        -d "$2"
    echo
}
post clients '{
        "Name": "New Client"
    }'
post networks '{
        "Name": "New Network",
        "Client": 2
    }'
post tunnels '{
        "Alias": "New Tunnel Service",
        "network": 1,
        "IP": "4.2.2.1"
    }'
server=$(post servers '{
        "Name": "masterServer",
        "network": 1,
        "IP": "192.168.1.10",
        "Pool": "tank"
    }')
echo "$server"
# Between these steps the guide runs install.sh on the server: its agent presents the
# server key and reports its pool (the panel refuses creates on a master that never did).
key=$(sed -n 's/.*"key":"\([^"]*\)".*/\1/p' <<<"$server")
curl -sf -H "Authorization: Bearer ${key}" -H 'Content-Type: application/json' -X POST "${PANEL}/api/v0.9.2/agent/stats.json" \
    -d '{"pool_health":"ONLINE","pool_size":107374182400,"pool_free":96636764160}'
post volumes '{
        "network": 1,
        "Alias": "New Volume 1",
        "vol_size": "42"
    }'
post groups '{
        "network": 1,
        "Name": "New Volume 1",
        "VolumeID": 1
    }'
curl -sfH "Authorization: Token token=\"${API_TOKEN}\"" "${PANEL}/api/v0.9.2/servers/masterServer/stats.json"
echo
