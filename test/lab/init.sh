#!/bin/sh
# Storage lab guest init, stage 2. Stage 1 (/sbin/lab-init in the image) mounted /proc,
# /sys, /dev and the host's 9p share on /mnt/host, then ran this file from the share.
# Settings come from /mnt/host/lab.env (written by the Go driver for this VM).
# Everything it prints goes to /mnt/host/init.log; /mnt/host/ready or /mnt/host/failed
# tells the host how it ended.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
share=/mnt/host
exec >>"$share/init.log" 2>&1
. "$share/lab.env"

fail() {
	echo "lab-init: FAILED: $*"
	echo "$*" >"$share/failed"
	sync
	sleep 1
	echo o >/proc/sysrq-trigger
	sleep 3600
}

step() { echo "lab-init: $(cut -d' ' -f1 /proc/uptime)s $*"; }

step "stage 2 on $LAB_NAME"
hostname "$LAB_NAME"
echo "$LAB_NAME" >/etc/hostname
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /tmp
mount -t tmpfs -o mode=1777 tmpfs /tmp

step "udev"
/lib/systemd/systemd-udevd --daemon || fail "systemd-udevd"
# Only block devices need udev's work at boot (the pool disk's by-id link); the running
# udevd handles the zvols created later. Replaying every device costs ~10 s under TCG.
udevadm trigger --action=add --subsystem-match=block
udevadm settle --timeout=120 || echo "lab-init: udevadm settle timed out"

step "network"
ip link set lo up
ip link set eth0 up || fail "no eth0"
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

step "zfs"
modprobe zfs || fail "modprobe zfs"
disk=/dev/disk/by-id/virtio-labpool
i=0
while [ ! -b "$disk" ]; do
	i=$((i + 1))
	[ $i -gt 120 ] && fail "pool disk $disk missing"
	sleep 0.5
done
# zpool create labels the disk and waits for udev to show its partitions; under a loaded
# TCG host that wait has failed ("cannot create 'tank': no such pool or dataset"). Let udev
# settle and try again, twice at most, before calling the guest failed.
n=0
until zpool create -f -o ashift=12 "$LAB_POOL" "$disk"; do
	n=$((n + 1))
	ls -l /dev/zfs "$disk"* 2>&1
	[ $n -ge 3 ] && fail "zpool create $LAB_POOL"
	echo "lab-init: zpool create failed; waiting for udev and trying again ($n)"
	udevadm settle --timeout=60 || true
	sleep 2
done
zpool list "$LAB_POOL"

step "exec helper on :$LAB_EXEC_PORT"
install -m 755 "$share/guestexec" /usr/local/sbin/lab-guestexec || fail "install guestexec"
setsid /usr/local/sbin/lab-guestexec -listen ":$LAB_EXEC_PORT" -token-file "$share/token" \
	>>"$share/guestexec.log" 2>&1 </dev/null &

# Binaries are copied off the share first: executing straight from 9p with cache=none
# is not reliable, and the copy lets the host replace its file freely.
if [ -f "$share/clusterducks" ]; then
	install -m 755 "$share/clusterducks" /usr/local/bin/clusterducks || fail "install clusterducks"
fi

if [ -f "$share/command.sh" ]; then
	step "command"
	(cd /root && LAB_POOL="$LAB_POOL" LAB_NAME="$LAB_NAME" setsid /bin/sh "$share/command.sh" \
		>>"$share/command.log" 2>&1 </dev/null &)
fi

step "ready"
echo ready >"$share/ready"
# PID 1 must never exit; the host ends the VM by killing qemu.
while :; do
	wait
	sleep 10
done
