#!/bin/sh
# edgefw: postinst (deb) and %post (rpm). One script for both packagers:
#   deb: configure [LAST-CONFIGURED-VERSION] | abort-upgrade | abort-remove
#        | abort-deconfigure | triggered
#   rpm: 1 (install) | 2 or more (upgrade)
#
# Sets up the directories and permissions, enables edgefwd.service on the
# first install and starts it; on an upgrade restarts it if it runs. The
# daemon is started or restarted only when the installed policy validates.
# A restart never leaves the host unprotected: edgefwd keeps its table in the
# kernel when it stops (fail closed) and the new process replaces it in one
# transaction.
#
# Without a running systemd (containers, image builds, chroots) nothing is
# started: the unit is only enabled, and starts at the next boot.
set -e

unit=edgefwd.service
policy=/etc/edgefw/policy.yaml

case "$1" in
configure)
	# An empty LAST-CONFIGURED-VERSION is a first install. A reinstall
	# after "dpkg --remove" (see preinst) brings the daemon back as the
	# kept enablement says.
	if [ -z "$2" ]; then
		action=install
	elif [ -e /run/edgefw.reinstall ]; then
		action=restore
	else
		action=upgrade
	fi
	rm -f /run/edgefw.reinstall
	;;
1) action=install ;;
[0-9]*) action=upgrade ;;
abort-remove)
	# prerm stopped the daemon, then the removal failed: start it again
	# if it is enabled.
	action=restore
	;;
*)
	# abort-upgrade, abort-deconfigure: the daemon was never stopped.
	exit 0
	;;
esac

# /etc/edgefw root:edgefw 0750, policy.d/ likewise, keys/ edgefw 0700:
# systemd/edgefw.tmpfiles, applied now rather than at the next boot.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	# By name, so that an admin's /etc/tmpfiles.d/edgefw.conf wins.
	systemd-tmpfiles --create edgefw.conf
else
	chown root:edgefw /etc/edgefw /etc/edgefw/policy.d
	chmod 0750 /etc/edgefw /etc/edgefw/policy.d
	chown edgefw:edgefw /etc/edgefw/keys
	chmod 0700 /etc/edgefw/keys
fi
# The daemon reads the policy through its group, which the package gives
# it by name. Were the group missing at unpack, dpkg and rpm fall back to
# root: fix that. A group an admin chose is left alone.
if [ -f "$policy" ] && [ "$(stat -c %G "$policy")" = root ]; then
	chgrp edgefw "$policy"
fi

# Enabling works without a running systemd: it only links the unit into
# sysinit.target.wants, so an image built with the package boots protected.
# Only on the first install, so that an admin's "systemctl disable" sticks.
if [ "$action" = install ] && command -v systemctl >/dev/null 2>&1; then
	systemctl --quiet enable "$unit"
fi

if [ ! -d /run/systemd/system ]; then
	exit 0
fi
systemctl daemon-reload

# Prints why the policy is invalid, and returns non-zero, if it is.
policy_valid() {
	if edgefwctl validate "$policy" >/dev/null; then
		return 0
	fi
	echo "edgefw: $policy is not valid (see above); $2 edgefwd. Fix it, check it with" \
		"'edgefwctl validate $policy', then run: systemctl $1 $unit" >&2
	return 1
}

case "$action" in
install)
	if policy_valid start "not starting"; then
		systemctl start "$unit" ||
			echo "edgefw: edgefwd did not start; see: journalctl -u $unit" >&2
	fi
	;;
upgrade)
	# try-restart: only if it runs. Stopped or disabled stays so.
	if policy_valid restart "not restarting"; then
		systemctl try-restart "$unit" ||
			echo "edgefw: edgefwd did not restart; see: journalctl -u $unit" >&2
	fi
	;;
restore)
	if systemctl --quiet is-enabled "$unit" && policy_valid start "not starting"; then
		systemctl start "$unit" ||
			echo "edgefw: edgefwd did not start; see: journalctl -u $unit" >&2
	fi
	;;
esac

exit 0
