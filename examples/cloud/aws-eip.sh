#!/bin/sh
# AWS: move an Elastic IP (or a secondary private IP) to this instance.
#
#   clustd driver shell --config /etc/clustd/clustd.yml --timeout 60s \
#       --on-master '/etc/clustd/cloud/aws-eip.sh master' \
#       --on-standby '/etc/clustd/cloud/aws-eip.sh standby'
#
# Needs the aws CLI and an instance role allowing ec2:AssociateAddress and
# ec2:DescribeAddresses. Settings:
#   EIP_ALLOCATION_ID  the Elastic IP's allocation id (eipalloc-…)
#   AWS_REGION         as for the aws CLI
#
# Associating with --allow-reassociation takes the address from whichever
# instance has it, in one call: idempotent, and the old master need not be
# reachable. On standby there is nothing to do: the next master takes the
# address over; releasing it here would only open a gap.
set -eu
. "$(dirname "$0")/lib.sh"
check_term
: "${EIP_ALLOCATION_ID:?set EIP_ALLOCATION_ID}"

imds() {
	tok=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
	curl -sf -H "X-aws-ec2-metadata-token: $tok" "http://169.254.169.254/latest/meta-data/$1"
}

case "${1:-}" in
master)
	instance=$(retry imds instance-id)
	current=$(retry aws ec2 describe-addresses --allocation-ids "$EIP_ALLOCATION_ID" \
		--query 'Addresses[0].InstanceId' --output text)
	if [ "$current" = "$instance" ]; then
		log "$EIP_ALLOCATION_ID is already on $instance"
		exit 0
	fi
	retry aws ec2 associate-address --allocation-id "$EIP_ALLOCATION_ID" \
		--instance-id "$instance" --allow-reassociation >/dev/null
	log "$EIP_ALLOCATION_ID moved from $current to $instance"
	;;
standby)
	log "standby: the next master takes the address over"
	;;
*)
	echo "usage: $0 master|standby" >&2
	exit 2
	;;
esac
