# Shared by the cloud examples: sourced, never run. Each on-master and
# on-standby script of `clustd driver shell` is idempotent, retries, and uses
# CLUSTD_TERM to ignore a call that a newer one has overtaken.
#
# Settings (environment, e.g. in the systemd unit of the driver):
#   CLUSTD_CLOUD_STATE  directory for the newest term seen (default /run/clustd-cloud)
#   CLUSTD_CLOUD_TRIES  attempts per API call (default 5)

state_dir=${CLUSTD_CLOUD_STATE:-/run/clustd-cloud}
tries=${CLUSTD_CLOUD_TRIES:-5}

log() { echo "$(basename "$0"): term ${CLUSTD_TERM:-?}: $*" >&2; }

# check_term refuses to act for a term older than one already acted on, and
# records this one. The driver never runs two scripts at once, but a retry
# loop or a slow API can finish after the node has moved on; the term only
# grows, so an older one is stale.
check_term() {
	: "${CLUSTD_TERM:?CLUSTD_TERM is not set: run this from clustd driver shell}"
	mkdir -p "$state_dir"
	last=0
	[ -f "$state_dir/term" ] && last=$(cat "$state_dir/term")
	if [ "$CLUSTD_TERM" -lt "$last" ]; then
		log "stale: term $last was already acted on; doing nothing"
		exit 0
	fi
	echo "$CLUSTD_TERM" >"$state_dir/term.tmp" && mv "$state_dir/term.tmp" "$state_dir/term"
}

# still_current exits quietly if a newer term was recorded meanwhile.
still_current() {
	now=$(cat "$state_dir/term" 2>/dev/null || echo 0)
	if [ "$now" -gt "$CLUSTD_TERM" ]; then
		log "overtaken by term $now; stopping"
		exit 0
	fi
}

# retry CMD… runs CMD up to $tries times, 1 s, 2 s, 4 s … apart, checking
# before each attempt that the term is still current.
retry() {
	delay=1
	i=1
	while :; do
		still_current
		if "$@"; then
			return 0
		fi
		if [ "$i" -ge "$tries" ]; then
			log "giving up after $i attempts: $*"
			return 1
		fi
		log "attempt $i failed; again in ${delay}s"
		sleep "$delay"
		i=$((i + 1))
		delay=$((delay * 2))
	done
}
