#!/bin/sh
# clusterducks storage-server installer (the guide's "Register the Master Server", step 15):
#
#   sh install.sh -h "panel.hostname" -k "server.key" -n "bridge.name"
#
# On a minimal Debian with networking configured, as root: checks what the server needs
# (systemd, the ZFS module and a pool, the bridge), fetches the agent binary from the
# panel over https and verifies it against the checksum the panel publishes, writes the
# agent's configuration (mode 0600) and its systemd unit, and starts it. Running it again
# is the upgrade path: only what changed is replaced, and the agent is restarted only then.
# It also writes /usr/local/sbin/clusterducks-uninstall, which never touches a dataset.
#
# Options besides the guide's three:
#   -p POOL   the pool that must exist (default: any imported pool will do)
#   -y        do not create the bridge when it is absent: report it missing instead
# Environment:
#   CLUSTERDUCKS_PANEL_URL=URL  the panel's base URL, instead of https://<panel.hostname>
#   CLUSTERDUCKS_INSECURE_HTTP=1  allows http (http://<panel.hostname>): a lab panel on
#                               loopback or a test network only; otherwise http is refused
#   CLUSTERDUCKS_PREFIX=DIR     install under DIR (tests), default /
#
# The whole body is the function main, called on the last line: a download cut short
# defines nothing and runs nothing.

set -u

unit_name=clusterducks-agent.service

say() { printf 'install.sh: %s\n' "$*"; }
die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: sh install.sh -h "panel.hostname" -k "server.key" -n "bridge.name" [-p pool] [-y]
EOF
	exit 2
}

# fetch URL FILE: downloads with whichever of wget or curl the system has.
fetch() {
	if command -v wget >/dev/null 2>&1; then
		wget -q -T 60 -t 3 -O "$2" "$1"
	elif command -v curl >/dev/null 2>&1; then
		curl -fsS --retry 3 -m 600 -o "$2" "$1"
	else
		return 127
	fi
}

# replace SRC DST MODE: moves SRC over DST when their contents differ and reports whether
# it did (exit 0: replaced). DST keeps no stale copy: the move is atomic within the directory.
replace() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		rm -f "$1"
		return 1
	fi
	chmod "$3" "$1" && mv -f "$1" "$2"
}

# bridge_persist NAME: makes the bridge come back at boot, through whichever network
# configuration the server uses (systemd-networkd or ifupdown).
bridge_persist() {
	if [ -d "$root/etc/systemd/network" ] && systemctl is-enabled systemd-networkd.service >/dev/null 2>&1; then
		cat >"$root/etc/systemd/network/50-clusterducks-$1.netdev" <<EOF
[NetDev]
Name=$1
Kind=bridge
EOF
		cat >"$root/etc/systemd/network/50-clusterducks-$1.network" <<EOF
[Match]
Name=$1

[Network]
ConfigureWithoutCarrier=yes
LinkLocalAddressing=no

[Link]
RequiredForOnline=no
EOF
	elif [ -d "$root/etc/network/interfaces.d" ]; then
		cat >"$root/etc/network/interfaces.d/clusterducks-$1" <<EOF
auto $1
iface $1 inet manual
	pre-up ip link add $1 type bridge || true
	up ip link set $1 up
	post-down ip link del $1 || true
EOF
	else
		say "warning: the bridge $1 exists now but no network configuration was found to keep it after a reboot"
	fi
}

write_unit() {
	cat >"$1" <<EOF
# Written by install.sh; running install.sh again rewrites it.
[Unit]
Description=clusterducks storage agent
Documentation=https://$panel_host/
Wants=network-online.target
After=network-online.target zfs.target zfs-import.target
Wants=zfs.target

[Service]
Type=simple
EnvironmentFile=$etc/agent.env
ExecStart=$bin agent
Restart=always
RestartSec=5
# Stopping must never wait on a stuck zfs command for ever.
TimeoutStopSec=60
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
EOF
}

write_uninstall() {
	cat >"$1" <<EOF
#!/bin/sh
# Written by install.sh: removes the clusterducks agent (its unit, binary, configuration
# and certificate). It never runs zfs or zpool: the pool and every dataset stay.
set -u
systemctl disable --now $unit_name 2>/dev/null || true
rm -f "$root/etc/systemd/system/$unit_name"
systemctl daemon-reload 2>/dev/null || true
rm -f "$bin"
rm -rf "$etc" "$state"
echo "clusterducks agent removed; the ZFS pool and its datasets were left in place"
rm -f "\$0"
EOF
}

main() {
	panel_host="" key_file="" bridge="" pool="" create_bridge=1
	while getopts h:k:n:p:y opt; do
		case $opt in
		h) panel_host=$OPTARG ;;
		k) key_file=$OPTARG ;;
		n) bridge=$OPTARG ;;
		p) pool=$OPTARG ;;
		y) create_bridge=0 ;;
		*) usage ;;
		esac
	done
	if [ -z "$panel_host" ] || [ -z "$key_file" ] || [ -z "$bridge" ]; then
		usage
	fi

	root=${CLUSTERDUCKS_PREFIX:-}
	etc=$root/etc/clusterducks
	state=$root/var/lib/clusterducks
	bin=$root/usr/local/bin/clusterducks-agent
	unit=$root/etc/systemd/system/$unit_name
	uninstall=$root/usr/local/sbin/clusterducks-uninstall

	scheme=https
	[ "${CLUSTERDUCKS_INSECURE_HTTP:-0}" = 1 ] && scheme=http
	panel=${CLUSTERDUCKS_PANEL_URL:-$scheme://$panel_host}
	panel=${panel%/}
	case $panel in
	https://*) ;;
	http://*)
		[ "${CLUSTERDUCKS_INSECURE_HTTP:-0}" = 1 ] ||
			die "refusing $panel: the agent binary is fetched over https (CLUSTERDUCKS_INSECURE_HTTP=1 allows http for a lab panel)"
		;;
	*) die "panel URL $panel: want https://" ;;
	esac

	# Preflight: every missing piece is reported at once, so one run tells the whole story.
	missing=""
	lack() { missing="$missing
  - $*"; }
	[ "$(id -u)" = 0 ] || lack "root: run as root (sudo sh install.sh ...)"
	[ -d /run/systemd/system ] || lack "systemd: this server does not run systemd as its init"
	for c in sha256sum ip cmp; do
		command -v "$c" >/dev/null 2>&1 || lack "the command $c"
	done
	command -v wget >/dev/null 2>&1 || command -v curl >/dev/null 2>&1 || lack "wget or curl (apt-get install wget)"
	if [ ! -r "$key_file" ] || [ ! -s "$key_file" ]; then
		lack "the server key file $key_file (from the panel's New Server form)"
	fi
	if [ ! -e /dev/zfs ] && ! modprobe zfs >/dev/null 2>&1; then
		lack "the ZFS kernel module (apt-get install zfs-dkms zfsutils-linux)"
	elif ! command -v zpool >/dev/null 2>&1; then
		lack "zpool (apt-get install zfsutils-linux)"
	elif [ -n "$pool" ]; then
		zpool list -H -o name "$pool" >/dev/null 2>&1 || lack "the ZFS pool $pool (zpool create $pool <disks>)"
	elif [ -z "$(zpool list -H -o name 2>/dev/null)" ]; then
		lack "a ZFS pool: create the pool named in the panel (zpool create <pool> <disks>)"
	fi
	if ! ip link show "$bridge" >/dev/null 2>&1 && [ "$create_bridge" = 0 ]; then
		lack "the network bridge $bridge (the guide's step 14)"
	fi
	# Optional pieces: the agent runs without them, and what needs them says so.
	command -v systemd-nspawn >/dev/null 2>&1 ||
		say "warning: containers cannot run on this server until systemd-nspawn is installed (apt-get install systemd-container)"
	command -v debootstrap >/dev/null 2>&1 ||
		say "warning: ctemplates cannot be built on this server until debootstrap is installed (apt-get install debootstrap); uploaded ones work"
	[ -z "$missing" ] || die "this server is missing:$missing"

	changed=""
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		say "creating the bridge $bridge (the guide's step 14)"
		ip link add "$bridge" type bridge || die "cannot create the bridge $bridge"
		ip link set "$bridge" up || die "cannot bring the bridge $bridge up"
		bridge_persist "$bridge"
	fi

	umask 077
	mkdir -p "$etc" "$state" "${bin%/*}" "${unit%/*}" "${uninstall%/*}" || die "cannot create the install directories"
	chmod 700 "$etc" "$state"

	# The agent binary: skipped when the installed one already has the published checksum.
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/clusterducks-install.XXXXXX") || die "mktemp failed"
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 143' TERM INT HUP
	url=$panel/downloads/clusterducks-agent-linux-amd64
	fetch "$url.sha256" "$tmp/sum" || die "cannot fetch $url.sha256"
	want=$(cut -d' ' -f1 "$tmp/sum")
	case $want in
	*[!0-9a-f]* | "") die "$url.sha256 is not a sha256 checksum" ;;
	esac
	[ ${#want} = 64 ] || die "$url.sha256 is not a sha256 checksum"
	have=""
	[ -f "$bin" ] && have=$(sha256sum "$bin" | cut -d' ' -f1)
	if [ "$have" = "$want" ]; then
		say "agent binary up to date (sha256 $want)"
	else
		say "fetching $url"
		fetch "$url" "$tmp/agent" || die "cannot fetch $url"
		got=$(sha256sum "$tmp/agent" | cut -d' ' -f1)
		[ "$got" = "$want" ] || die "the agent binary's sha256 is $got, the panel publishes $want: not installed"
		chmod 755 "$tmp/agent"
		# Same directory, then rename: a running agent keeps its old file until restarted.
		cp "$tmp/agent" "$bin.new" || die "cannot write $bin.new"
		mv -f "$bin.new" "$bin" || die "cannot install $bin"
		changed="$changed binary"
	fi

	# The server key stays readable by root only; the agent presents it to the panel.
	tr -d ' \t\r\n' <"$key_file" >"$tmp/key"
	replace "$tmp/key" "$etc/server.key" 600 && changed="$changed key"

	cat >"$tmp/env" <<EOF
# Written by install.sh; running install.sh again rewrites it.
CLUSTERDUCKS_PANEL=$panel
CLUSTERDUCKS_KEY_FILE=$etc/server.key
CLUSTERDUCKS_STATE=$state
CLUSTERDUCKS_BRIDGE=$bridge
EOF
	replace "$tmp/env" "$etc/agent.env" 600 && changed="$changed config"

	write_unit "$tmp/unit"
	replace "$tmp/unit" "$unit" 644 && changed="$changed unit"
	write_uninstall "$tmp/uninstall"
	replace "$tmp/uninstall" "$uninstall" 755 || true

	if [ -n "$root" ]; then
		say "installed under $root (changed:${changed:- nothing}); not starting anything"
		return 0
	fi
	case $changed in *unit*) systemctl daemon-reload || die "systemctl daemon-reload failed" ;; esac
	systemctl enable "$unit_name" >/dev/null 2>&1 || die "cannot enable $unit_name"
	if [ -n "$changed" ]; then
		say "changed:$changed; (re)starting the agent"
		systemctl restart "$unit_name" || die "cannot start $unit_name (journalctl -u $unit_name)"
	elif ! systemctl is-active --quiet "$unit_name"; then
		say "nothing changed; the agent was not running: starting it"
		systemctl start "$unit_name" || die "cannot start $unit_name (journalctl -u $unit_name)"
	else
		say "nothing changed; the agent keeps running"
	fi
	say "done: reboot the server, then check \"Panel to server OK\" in its Status on the panel"
	# The agent exchanges the key once for its certificate and authenticates with that after.
	say "once it shows, the agent holds its certificate in $state: $key_file and $etc/server.key may be deleted (running install.sh again needs a key: the panel's server page issues a new one)"
	say "to remove the agent (the pool and its datasets stay): $uninstall"
}

main "$@"
