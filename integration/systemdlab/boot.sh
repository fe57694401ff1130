#!/bin/sh
# boot.sh LABDIR CGROUP [INIT]: boot systemd as PID 1 in a throw-away
# "machine" made of private namespaces, for tests that need a real service
# manager; or, with INIT "none", the same machine without one, as a
# container or an image build is, where PID 1 only waits.
#
# The machine sees the host's root file system through an overlay whose
# upper layer is a tmpfs: it can write anywhere (dpkg, sysusers, systemctl
# enable) and nothing reaches the host. It has its own PID, mount, network,
# UTS, IPC and cgroup namespaces and fresh tmpfs on /run, /tmp, /var/tmp and
# /dev, so systemd cannot see or touch the host's processes, links,
# firewall, temporary files or devices. Which units it starts is decided by
# the caller through LABDIR/overlay (see integration/systemd_test.go):
# a minimal default target, every other service masked, generators off.
#
# LABDIR/overlay  files laid over the host's root (the upper layer's start)
# CGROUP          an empty cgroup2 directory created for this machine; it
#                 becomes the root of the machine's cgroup namespace
# INIT            "systemd" (the default) or "none"
#
# The script runs twice: first on the host, where it moves itself into
# CGROUP and re-executes itself under unshare(1); then as PID 1 of the new
# PID namespace, where it builds the root and finally execs systemd (or
# sleep).
# Everything it mounts lives in the private mount namespace and disappears
# with it; killing PID 1 tears the whole machine down.
set -eu

if [ "${1:-}" != --inner ]; then
	lab=$1
	cgroup=$2
	init=${3:-systemd}
	case $init in
	systemd | none) ;;
	*)
		echo "boot.sh: INIT is systemd or none, not $init" >&2
		exit 2
		;;
	esac
	echo $$ >"$cgroup/cgroup.procs"
	# --kill-child: if unshare dies (the test was killed), so does PID 1,
	# and with it every process of the machine.
	exec unshare --pid --fork --kill-child --mount --propagation private \
		--net --uts --ipc --cgroup -- /bin/sh "$0" --inner "$lab" "$init"
fi

lab=$2
init=$3
mnt=$lab/mnt
root=$mnt/root

mkdir -p "$mnt"
mount -t tmpfs -o mode=0755 edgefw-lab "$mnt"
mkdir "$mnt/upper" "$mnt/work" "$root"
cp -a "$lab/overlay/." "$mnt/upper/"
# Only the file system mounted on / is visible through the overlay
# (overlayfs does not cross mount points); API file systems are mounted
# fresh below.
mount -t overlay -o "lowerdir=/,upperdir=$mnt/upper,workdir=$mnt/work" edgefw-lab "$root"

# /proc of the new PID namespace. Kernel tunables are read-only except the
# network namespace's own (/proc/sys/net), as in systemd-nspawn: systemd
# and the services must not change sysctls that are shared with the host.
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
mount -o remount,bind,ro "$root/proc/sys"
if [ -e "$root/proc/sysrq-trigger" ]; then
	mount --bind "$root/proc/sysrq-trigger" "$root/proc/sysrq-trigger"
	mount -o remount,bind,ro "$root/proc/sysrq-trigger"
fi

# sysfs read-only (its net/ shows this network namespace); a writable
# cgroup2 hierarchy rooted at CGROUP for systemd to manage.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"

# A minimal /dev: no disks, no kmsg, no console; /dev/net/tun for
# userspace WireGuard. cp -a recreates the device nodes. /dev/net/tun is
# made as the kernel's devtmpfs makes it (misc device 10:200, 0666), not
# copied: some hosts have it at 0600, which the unit's User=edgefw cannot
# open, and the lab is a machine as installed, not this host.
mount -t tmpfs -o mode=0755,nosuid edgefw-lab-dev "$root/dev"
for node in null zero full random urandom tty; do
	cp -a "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/net" "$root/dev/pts" "$root/dev/shm"
if [ -e /dev/net/tun ]; then
	mknod -m 0666 "$root/dev/net/tun" c 10 200
fi
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev edgefw-lab-shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"

# What systemd-tmpfiles would otherwise clean on the host.
mount -t tmpfs -o mode=0755,nosuid,nodev edgefw-lab-run "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev edgefw-lab-tmp "$root/tmp"
mount -t tmpfs -o mode=1777,nosuid,nodev edgefw-lab-vartmp "$root/var/tmp"

# Make the overlay the root and drop every reference to the host's tree.
cd "$root"
mkdir -p .edgefw-lab-oldroot
pivot_root . .edgefw-lab-oldroot
cd /
umount -l /.edgefw-lab-oldroot
rmdir /.edgefw-lab-oldroot

# Without a service manager, PID 1 only keeps the machine alive. Nothing
# reaps orphans, which is harmless for the short life of a test machine.
if [ "$init" = none ]; then
	exec env -i container=edgefw-lab PATH=/usr/sbin:/usr/bin:/sbin:/bin sleep infinity
fi

# container= makes systemd behave as in any container manager: it reads
# its options from its own command line instead of the host kernel's, and
# leaves the hardware alone. Without a console, systemd logs to the
# journal; what this script prints goes to the caller.
exec env -i container=edgefw-lab PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	/lib/systemd/systemd --log-target=journal --show-status=no
