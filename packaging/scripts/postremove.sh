#!/bin/sh
# edgefw: postrm (deb) and %postun (rpm). One script for both packagers:
#   deb: remove | purge | upgrade NEW-VERSION | failed-upgrade
#        | abort-install | abort-upgrade | disappear
#   rpm: 0 (erase) | 1 or more (upgrade: the old package's script)
#
# remove (deb), 0 (rpm): the unit file is gone; tell systemd. The
#   configuration in /etc/edgefw, the state in /var/lib/edgefw and the
#   ruleset in the kernel stay. rpm keeps a changed policy.yaml as
#   policy.yaml.rpmsave, and /etc/edgefw with any generated keys.
# purge (deb only): everything edgefw left goes: /etc/edgefw (keys
#   included), /var/lib/edgefw, /run/edgefw, the unit's enablement links and
#   table inet edgefw (the daemon was stopped at "remove"). The edgefw user
#   and group stay, as Debian policy (9.2.2) asks of system users: files
#   owned by that UID may remain (copies of keys, backups, logs), and a
#   reused UID would own them.
set -e

unit=edgefwd.service

case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
	fi
	;;
purge)
	# systemctl disable needs the unit file, which is gone: remove the
	# links "systemctl enable" made (WantedBy=sysinit.target) by hand.
	rm -f /etc/systemd/system/*.wants/"$unit"
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
		systemctl reset-failed "$unit" 2>/dev/null || true
	fi
	if command -v nft >/dev/null 2>&1; then
		if nft list table inet edgefw >/dev/null 2>&1; then
			nft delete table inet edgefw ||
				echo "edgefw: could not delete table inet edgefw" >&2
		fi
	else
		echo "edgefw: nft is not installed; table inet edgefw, if any, stays until the next boot" >&2
	fi
	rm -rf /etc/edgefw /var/lib/edgefw /run/edgefw
	;;
esac

exit 0
