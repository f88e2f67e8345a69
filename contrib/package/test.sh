#!/bin/sh
# Installs the .deb that build.sh made into a throwaway root with dpkg
# --root (maintainer scripts run outside a chroot, with DPKG_ROOT set), then
# checks that clustd --version names this commit, that postinstall made the
# clustd user and group in that root, and the owners and modes of what was
# installed. The rpm is listed when rpm is installed. make package-test.
set -eu
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v dpkg >/dev/null || { echo "SKIPPED: dpkg not found; the package test needs a Debian system" >&2; exit 0; }
deb=$(ls -t dist/clustd_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no dist/clustd_*.deb: run make package first"

# The maintainer scripts run on this machine: make sure they are ones that
# act inside DPKG_ROOT before letting dpkg run them.
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst | grep -q 'DPKG_ROOT' ||
	fail "$deb's postinst ignores DPKG_ROOT; rebuild it (make package)"

R=$(mktemp -d "${TMPDIR:-/tmp}/ops-clustd-root.XXXXXX")
trap 'rm -rf "$R"' EXIT
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc" "$R/var/log"
: >"$R/var/lib/dpkg/status"
: >"$R/var/lib/dpkg/available"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$R/etc/shadow"
printf 'root:*::\n' >"$R/etc/gshadow"

dpkg --root="$R" --log=/dev/null --force-script-chrootless --force-not-root -i "$deb" >"$R/dpkg.out" 2>&1 ||
	{ cat "$R/dpkg.out" >&2; fail "dpkg --root -i $deb"; }
dpkg --root="$R" -s clustd | grep -q '^Status: install ok installed' || fail "clustd is not installed in $R"

# The binary runs, static, and says which commit it is.
want=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
got=$("$R/usr/bin/clustd" --version)
case "$got" in
*" $want"*) ;;
*) fail "clustd --version says \"$got\", want it to name $want" ;;
esac
if command -v file >/dev/null && ! file "$R/usr/bin/clustd" | grep -q 'statically linked'; then
	fail "usr/bin/clustd is not statically linked"
fi

# postinstall made the user and group in the root, not on this machine.
grep -q '^clustd:x:[0-9]*:[0-9]*:.*:/var/lib/clustd:/usr/sbin/nologin$' "$R/etc/passwd" || fail "no clustd user in $R/etc/passwd"
gid=$(awk -F: '$1 == "clustd" { print $3 }' "$R/etc/group")
[ -n "$gid" ] || fail "no clustd group in $R/etc/group"

check() { # check PATH MODE UID GID
	[ -e "$R$1" ] || fail "$1 is missing"
	st=$(stat -c '%a %u %g' "$R$1")
	[ "$st" = "$2 $3 $4" ] || fail "$1: mode, owner, group $st; want $2 $3 $4"
}
check /usr/bin/clustd 755 0 0
check /etc/clustd 750 0 "$gid"
check /etc/clustd/drivers 750 0 "$gid"
check /lib/systemd/system/clustd.service 644 0 0
check /lib/systemd/system/clustd-driver@.service 644 0 0
check /lib/systemd/system/clustd-driver@vip.service.d/net-admin.conf 644 0 0
check /usr/share/man/man8/clustd.8.gz 644 0 0
check /usr/share/bash-completion/completions/clustd 644 0 0
check /usr/share/zsh/vendor-completions/_clustd 644 0 0
check /usr/share/fish/vendor_completions.d/clustd.fish 644 0 0
gzip -dc "$R/usr/share/man/man8/clustd.8.gz" | grep -q '^\.TH clustd 8' || fail "the manual page is not clustd(8) in roff"
grep -q 'complete .*clustd' "$R/usr/share/bash-completion/completions/clustd" || fail "the bash completion does not complete clustd"

# Removing keeps the configuration directory and the user.
dpkg --root="$R" --log=/dev/null --force-script-chrootless --force-not-root -r clustd >"$R/dpkg.out" 2>&1 ||
	{ cat "$R/dpkg.out" >&2; fail "dpkg --root -r clustd"; }
[ ! -e "$R/usr/bin/clustd" ] || fail "usr/bin/clustd survived removal"
grep -q '^clustd:' "$R/etc/passwd" || fail "removal deleted the clustd user"

if command -v rpm >/dev/null; then
	rpm -qlp dist/clustd-*.rpm | grep -qx /usr/bin/clustd || fail "the rpm lacks /usr/bin/clustd"
fi
echo "ok: $deb installs into a throwaway root; clustd --version: $got"
