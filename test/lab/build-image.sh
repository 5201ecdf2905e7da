#!/bin/bash
# Builds the storage lab's guest: Debian bookworm with its stock kernel and OpenZFS
# (zfs-dkms, built by dkms inside the chroot for the guest's kernel).
#
#   build-image.sh MIRROR WORKDIR OUTPREFIX
#
# MIRROR is the Debian archive the host's apt already uses (the Go driver reads it from
# the host's sources; nothing here names a mirror). WORKDIR is scratch space that this
# script owns; OUTPREFIX.img (ext4 root file system), OUTPREFIX.vmlinuz, OUTPREFIX.initrd
# and OUTPREFIX.env (KERNEL=, ZFS=) are written on success.
#
# The package list and the stage-1 init below are part of the recipe: the driver hashes
# this whole file, so editing it makes the next run build a new image.
set -euo pipefail

mirror=$1
work=$2
out=$3
suite=bookworm
root=$work/root

log() { echo "lab-image: $(date -u +%H:%M:%S) $*" >&2; }

# Unmounts everything under $root, deepest first; called on every exit so a failed or
# interrupted build never leaves the host's /dev or /proc mounted inside the chroot.
unmount_all() {
	local m
	for _ in 1 2 3; do
		mapfile -t mounts < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r)
		[ ${#mounts[@]} -eq 0 ] && return 0
		for m in "${mounts[@]}"; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	done
	awk -v r="$root" '$2 == r || index($2, r "/") == 1 { found = 1 } END { exit !found }' /proc/mounts && {
		log "mounts left under $root"
		return 1
	}
	return 0
}
trap unmount_all EXIT
# A signal ends the script through its EXIT trap, which unmounts.
trap 'exit 143' TERM INT HUP

in_chroot() {
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "$@"
}

mkdir -p "$work"
unmount_all
rm -rf --one-file-system "$root"

log "debootstrap $suite from $mirror"
debootstrap --variant=minbase --components=main,contrib \
	--include=udev,kmod,iproute2,procps,systemd,systemd-sysv,wget,ca-certificates,netbase \
	"$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
	tail -n 50 "$work/debootstrap.log" >&2
	exit 1
}

# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

cat >"$root/etc/apt/apt.conf.d/90lab" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
EOF

log "kernel and headers"
in_chroot apt-get update -qq
in_chroot apt-get install -y -qq linux-image-amd64 linux-headers-amd64 >"$work/kernel.log" 2>&1 || {
	tail -n 50 "$work/kernel.log" >&2
	exit 1
}
# systemd-nspawn for containers, installed with apt rather than through debootstrap's
# --include (whose configure stage failed on it five times out of five).
in_chroot apt-get install -y -qq systemd-container >"$work/container.log" 2>&1 || {
	tail -n 50 "$work/container.log" >&2
	exit 1
}
kver=$(basename "$(ls -d "$root"/lib/modules/* | sort -V | tail -n 1)")
log "kernel $kver"

log "zfs-dkms and zfsutils-linux (dkms builds the module; this is the long step)"
in_chroot apt-get install -y -qq zfs-dkms zfsutils-linux >"$work/zfs.log" 2>&1 || {
	tail -n 80 "$work/zfs.log" >&2
	exit 1
}
zver=$(in_chroot dpkg-query -W -f='${Version}' zfs-dkms)
# dkms builds for the running kernel by default; the guest's kernel is what counts.
if ! ls "$root/lib/modules/$kver/updates/dkms/zfs.ko"* >/dev/null 2>&1; then
	log "zfs module missing for $kver: dkms install"
	in_chroot dkms install "zfs/${zver%%-*}" -k "$kver" >>"$work/zfs.log" 2>&1 || {
		tail -n 80 "$work/zfs.log" >&2
		exit 1
	}
fi
ls "$root/lib/modules/$kver/updates/dkms/zfs.ko"* >/dev/null
in_chroot depmod "$kver"
log "zfs $zver"

# Stage 1 init: mounts the host's 9p share and hands over to the init script the
# driver writes there, so changing the guest's boot steps never needs a new image.
cat >"$root/sbin/lab-init" <<'EOF'
#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# The initramfs has moved its /proc, /sys and /dev here already; mount what is missing.
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /mnt/host
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts
modprobe -a virtio_pci 9pnet_virtio 9p
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none host /mnt/host &&
	[ -f /mnt/host/init.sh ]; then
	exec /bin/sh /mnt/host/init.sh
fi
echo "lab-init: no host share" >/dev/console
echo o >/proc/sysrq-trigger
EOF
chmod 755 "$root/sbin/lab-init"

# The same image also boots systemd as init (no init= on the kernel command line), as a
# minimal networked Debian does: the install tests need a real service manager. Then the
# lab-host unit mounts the share and runs the driver's systemd.sh (exec helper, pool);
# systemd-networkd gives eth0 the user-mode network's fixed address.
cat >"$root/sbin/lab-systemd" <<'EOF'
#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /mnt/host
mountpoint -q /mnt/host ||
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none host /mnt/host || exit 1
[ -f /mnt/host/systemd.sh ] || exit 0
exec /bin/sh /mnt/host/systemd.sh
EOF
chmod 755 "$root/sbin/lab-systemd"
cat >"$root/etc/systemd/system/lab-host.service" <<'EOF'
[Unit]
Description=Storage lab host share and exec helper
After=local-fs.target systemd-udevd.service network.target
Wants=network.target

[Service]
Type=simple
ExecStart=/sbin/lab-systemd
KillMode=process

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-lab.network" <<'EOF'
[Match]
Name=eth0

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
EOF
in_chroot systemctl enable lab-host.service systemd-networkd.service
in_chroot systemctl mask systemd-firstboot.service
in_chroot systemd-machine-id-setup
echo lab >"$root/etc/hostname"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"
: >"$root/etc/fstab"

in_chroot apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root/usr/sbin/policy-rc.d"

unmount_all

cp "$root/boot/vmlinuz-$kver" "$out.vmlinuz"
cp "$root/boot/initrd.img-$kver" "$out.initrd"

size=$(du -sm --apparent-size "$root" | cut -f1)
size=$((size + size / 4 + 512))
log "mkfs.ext4 -d (${size} MB)"
rm -f "$out.img"
truncate -s "${size}M" "$out.img"
mkfs.ext4 -q -F -L labroot -E root_owner=0:0 -d "$root" "$out.img"
printf 'KERNEL=%s\nZFS=%s\n' "$kver" "$zver" >"$out.env"
rm -rf --one-file-system "$root"
log "done"
