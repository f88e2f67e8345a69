#!/bin/sh
# clustd postinstall: the system user the units run as, the group that may
# read /etc/clustd, and systemd told of the units. Safe to run again. It
# honours DPKG_ROOT, so that an install into another root (dpkg --root with
# --force-script-chrootless) changes that root's users, not this machine's.
set -e
root=${DPKG_ROOT:-}

has() { # has passwd|group NAME
	if [ -z "$root" ]; then
		getent "$1" "$2" >/dev/null
	else
		grep -q "^$2:" "$root/etc/$1" 2>/dev/null
	fi
}

if ! has group clustd; then
	if [ -n "$root" ]; then
		groupadd --prefix "$root" --system clustd
	elif command -v addgroup >/dev/null 2>&1; then
		addgroup --system clustd >/dev/null
	else
		groupadd --system clustd
	fi
fi
if ! has passwd clustd; then
	if [ -n "$root" ]; then
		useradd --prefix "$root" --system --gid clustd --home-dir /var/lib/clustd --no-create-home \
			--shell /usr/sbin/nologin --comment "clustd cluster daemon" clustd
	elif command -v adduser >/dev/null 2>&1; then
		adduser --system --ingroup clustd --home /var/lib/clustd --no-create-home \
			--shell /usr/sbin/nologin --gecos "clustd cluster daemon" clustd >/dev/null
	else
		useradd --system --gid clustd --home-dir /var/lib/clustd --no-create-home \
			--shell /usr/sbin/nologin --comment "clustd cluster daemon" clustd
	fi
fi

# The group's number, read where the group was made: a name would be looked
# up in this machine's databases.
if [ -n "$root" ]; then
	gid=$(awk -F: '$1 == "clustd" { print $3 }' "$root/etc/group")
else
	gid=$(getent group clustd | cut -d: -f3)
fi
for d in "$root/etc/clustd" "$root/etc/clustd/drivers"; do
	chown "0:$gid" "$d"
	chmod 0750 "$d"
done

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
exit 0
