#!/bin/sh
# Storage lab guest in systemd mode (Options.Systemd): the image's lab-host.service runs
# this file from the host's share at every boot, after systemd brought up the network.
# It imports (or, on the very first boot, creates) the pool, installs the exec helper and
# runs it as the unit's main process. Settings come from /mnt/host/lab.env.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
share=/mnt/host
exec >>"$share/init.log" 2>&1
. "$share/lab.env"

fail() {
	echo "lab-systemd: FAILED: $*"
	echo "$*" >"$share/failed"
	exit 1
}

step() { echo "lab-systemd: $(cut -d' ' -f1 /proc/uptime)s $*"; }

step "systemd boot of $LAB_NAME"
hostname "$LAB_NAME"
echo "$LAB_NAME" >/etc/hostname

step "zfs"
modprobe zfs || fail "modprobe zfs"
# zfs-import-cache may be importing right now: let it finish before looking.
systemctl start zfs-import.target || echo "lab-systemd: zfs-import.target did not start"
if ! zpool list "$LAB_POOL" >/dev/null 2>&1; then
	if [ -f "$share/pool-created" ]; then
		# Never create over a pool this VM made before: import it, or fail loudly.
		zpool import -f "$LAB_POOL" || fail "zpool import $LAB_POOL"
	else
		disk=/dev/disk/by-id/virtio-labpool
		i=0
		while [ ! -b "$disk" ]; do
			i=$((i + 1))
			[ $i -gt 240 ] && fail "pool disk $disk missing"
			sleep 0.5
		done
		zpool create -f -o ashift=12 "$LAB_POOL" "$disk" || fail "zpool create $LAB_POOL"
		echo created >"$share/pool-created"
	fi
fi
zpool list "$LAB_POOL"

if [ -f "$share/clusterducks" ]; then
	install -m 755 "$share/clusterducks" /usr/local/bin/clusterducks || fail "install clusterducks"
fi
install -m 755 "$share/guestexec" /usr/local/sbin/lab-guestexec || fail "install guestexec"
step "ready; exec helper on :$LAB_EXEC_PORT"
echo ready >"$share/ready"
exec /usr/local/sbin/lab-guestexec -listen ":$LAB_EXEC_PORT" -token-file "$share/token" >>"$share/guestexec.log" 2>&1 </dev/null
