#!/bin/sh
# clustd preremove: stop the daemon (a master hands over first) and its
# drivers before the binary goes.
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl stop 'clustd-driver@*.service' clustd.service >/dev/null 2>&1 || true
fi
exit 0
