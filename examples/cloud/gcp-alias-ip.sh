#!/bin/sh
# GCP: move an alias IP range between instances.
#
#   clustd driver shell --config /etc/clustd/clustd.yml --timeout 120s \
#       --on-master '/etc/clustd/cloud/gcp-alias-ip.sh master' \
#       --on-standby '/etc/clustd/cloud/gcp-alias-ip.sh standby'
#
# Needs gcloud and a service account allowing compute.instances.updateNetworkInterface.
# Settings:
#   ALIAS_IP   the floating address as a range, e.g. 10.128.0.100/32
#   PEERS      the other instances, as NAME:ZONE separated by spaces
#
# GCP will not give one alias range to two instances: the master first takes
# it off any peer still holding it (a peer that is down cannot object), then
# adds it to itself. Both steps are idempotent; the standby removes it from
# itself, so that a recovered old master does not block the next hand-over.
set -eu
. "$(dirname "$0")/lib.sh"
check_term
: "${ALIAS_IP:?set ALIAS_IP}"

md() { curl -sf -H 'Metadata-Flavor: Google' "http://metadata.google.internal/computeMetadata/v1/instance/$1"; }
name=$(md name)
zone=$(md zone | sed 's#.*/##')

holds() { # holds NAME ZONE: the instance has ALIAS_IP
	gcloud compute instances describe "$1" --zone "$2" \
		--format='value(networkInterfaces[0].aliasIpRanges[].ipCidrRange)' | tr ';' '\n' | grep -qx "$ALIAS_IP"
}

case "${1:-}" in
master)
	for p in ${PEERS:-}; do
		pn=${p%%:*} pz=${p#*:}
		if holds "$pn" "$pz"; then
			retry gcloud compute instances network-interfaces update "$pn" --zone "$pz" --aliases ''
			log "removed $ALIAS_IP from $pn"
		fi
	done
	if holds "$name" "$zone"; then
		log "$ALIAS_IP is already on $name"
		exit 0
	fi
	retry gcloud compute instances network-interfaces update "$name" --zone "$zone" --aliases "$ALIAS_IP"
	log "$ALIAS_IP added to $name"
	;;
standby)
	if holds "$name" "$zone"; then
		retry gcloud compute instances network-interfaces update "$name" --zone "$zone" --aliases ''
		log "$ALIAS_IP removed from $name"
	fi
	;;
*)
	echo "usage: $0 master|standby" >&2
	exit 2
	;;
esac
