#!/bin/sh
# edgefw: prerm (deb) and %preun (rpm). One script for both packagers:
#   deb: remove | upgrade NEW-VERSION | deconfigure | failed-upgrade
#   rpm: 0 (erase) | 1 or more (upgrade: the old package's script)
#
# On removal, stops edgefwd. Its table stays in the kernel (fail closed): the
# host keeps the last policy until a purge (deb) or an explicit removal,
# "edgefwctl remove --yes" while the daemon still runs or
# "nft delete table inet edgefw". On an upgrade the daemon keeps running;
# the new package's postinst restarts it.
set -e

unit=edgefwd.service

stop() {
	if [ -d /run/systemd/system ]; then
		systemctl stop "$unit" ||
			echo "edgefw: could not stop $unit" >&2
		echo "edgefw: edgefwd stopped; table inet edgefw stays in the kernel (fail closed)" >&2
	fi
}

case "$1" in
remove)
	# The enablement is configuration: kept until a purge, so that a
	# reinstall brings the daemon back as it was.
	stop
	;;
0)
	# rpm has no purge: an erase is final, so the unit is disabled now.
	stop
	if command -v systemctl >/dev/null 2>&1; then
		systemctl --quiet --no-reload disable "$unit" || true
	fi
	echo "edgefw: to remove the ruleset too: nft delete table inet edgefw" >&2
	;;
esac

exit 0
