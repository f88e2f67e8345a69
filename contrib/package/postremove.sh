#!/bin/sh
# clustd postremove: the user, /etc/clustd and /var/lib/clustd stay: they
# hold the cluster's secret and this node's term and vote.
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
exit 0
