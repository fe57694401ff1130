#!/bin/sh
# edgefw: preinst (deb) and %pre (rpm). One script for both packagers; the
# first argument says which one runs it:
#   deb: install [OLD-VERSION] | upgrade OLD-VERSION | abort-upgrade NEW-VERSION
#   rpm: 1 (install) | 2 or more (upgrade)
#
# Creates the edgefw system user and group before the files are unpacked, so
# that dpkg and rpm give /etc/edgefw, its keys/ and the policy their owner
# and group by name. Works
# without a running systemd (containers, image builds): nothing here talks to
# the service manager.
set -e

# The line of systemd/edgefw.sysusers (/usr/lib/sysusers.d/edgefw.conf),
# which is not on disk yet at the first install.
sysusers_line='u edgefw - "edgefw firewall daemon" /var/lib/edgefw'

create_user() {
	if getent passwd edgefw >/dev/null && getent group edgefw >/dev/null; then
		return 0
	fi
	if command -v systemd-sysusers >/dev/null 2>&1; then
		# The idiom of sysusers(8) for package scripts: the line stands
		# in for the file the package installs, and an admin's
		# /etc/sysusers.d/edgefw.conf still takes precedence.
		printf '%s\n' "$sysusers_line" |
			systemd-sysusers --replace=/usr/lib/sysusers.d/edgefw.conf -
	else
		getent group edgefw >/dev/null || groupadd --system edgefw
		getent passwd edgefw >/dev/null ||
			useradd --system --gid edgefw --no-create-home \
				--home-dir /var/lib/edgefw --shell /usr/sbin/nologin \
				--comment "edgefw firewall daemon" edgefw
	fi
}

case "$1" in
install | upgrade | [0-9]*)
	create_user
	;;
esac

# deb: "install OLD-VERSION" is a reinstall after "dpkg --remove", which
# stopped the daemon but kept its configuration; postinst cannot tell it
# from an upgrade, where the daemon still runs, so leave it a note.
if [ "$1" = install ] && [ -n "$2" ]; then
	: >/run/edgefw.reinstall 2>/dev/null || true
fi

exit 0
