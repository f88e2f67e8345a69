#!/bin/sh
# Hetzner Cloud: assign a Floating IP to this server.
#
#   clustd driver shell --config /etc/clustd/clustd.yml --timeout 60s \
#       --on-master '/etc/clustd/cloud/hetzner-floating-ip.sh master' \
#       --on-standby '/etc/clustd/cloud/hetzner-floating-ip.sh standby'
#
# Needs curl and jq. Settings:
#   HCLOUD_TOKEN        an API token with read/write access (keep it in a file
#                       only root can read, loaded by the unit's EnvironmentFile)
#   FLOATING_IP_ID      the Floating IP's id
#   FLOATING_IP         the address itself, which must also be configured on the
#                       interface: pair this with clustd driver vip --garp-count 0, or add it on
#                       every server permanently (Hetzner routes it to the assignee)
#
# Assign moves the address from any other server in one call; the call is
# skipped when it is already assigned here.
set -eu
. "$(dirname "$0")/lib.sh"
check_term
: "${HCLOUD_TOKEN:?set HCLOUD_TOKEN}" "${FLOATING_IP_ID:?set FLOATING_IP_ID}"
api=https://api.hetzner.cloud/v1

server_id() { curl -sf http://169.254.169.254/hetzner/v1/metadata/instance-id; }
assigned() {
	curl -sf -H "Authorization: Bearer $HCLOUD_TOKEN" "$api/floating_ips/$FLOATING_IP_ID" | jq -r '.floating_ip.server // empty'
}
assign() {
	curl -sf -X POST -H "Authorization: Bearer $HCLOUD_TOKEN" -H 'Content-Type: application/json' \
		-d "{\"server\": $1}" "$api/floating_ips/$FLOATING_IP_ID/actions/assign" >/dev/null
}

case "${1:-}" in
master)
	me=$(retry server_id)
	now=$(retry assigned)
	if [ "$now" = "$me" ]; then
		log "floating IP $FLOATING_IP_ID is already on server $me"
		exit 0
	fi
	retry assign "$me"
	log "floating IP $FLOATING_IP_ID moved from server ${now:-none} to $me"
	;;
standby)
	log "standby: the next master takes the floating IP over"
	;;
*)
	echo "usage: $0 master|standby" >&2
	exit 2
	;;
esac
