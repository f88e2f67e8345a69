package node

import (
	"fmt"
	"time"

	"github.com/clustd/clustd/election"
	"github.com/clustd/clustd/node/sdnotify"
)

// noPing is nextPing when no watchdog is asked for.
const noPing = time.Duration(1<<63 - 1)

// watchdogEvery is how often the loop pings the service manager's
// watchdog: twice per watchdog timeout, as sd_watchdog_enabled(3) advises,
// and at least twice per lease, so that a ping vouches for a loop that
// has recently served its lease deadlines. Zero means no watchdog.
func (d *Daemon) watchdogEvery() time.Duration {
	wd := d.Notify.WatchdogTimeout()
	if wd <= 0 {
		return 0
	}
	return max(min(wd/2, d.cfg.Timing.LeaseDuration()/2), time.Millisecond)
}

// startNotify announces readiness: New has loaded the state file and bound
// both listeners, and Run has started serving them. It arms the watchdog.
func (d *Daemon) startNotify() {
	if d.Notify == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.watchdogEvery() > 0 {
		d.nextPing = 0
		d.timer.Reset(0)
		d.deadline = -1
	}
	d.statusLine = d.summary()
	if err := d.Notify.Send(sdnotify.Ready, sdnotify.Status(d.statusLine)); err != nil {
		d.log.Warn("cannot tell the service manager we are ready", "err", err)
	}
}

// pingWatchdog sends WATCHDOG=1 when one is due. Only the loop calls it,
// from its timer and with the lock held: a ping then proves that the loop
// runs and that the core's lock is not stuck, which is what a watchdog
// restart is meant to cure. Pings from any other goroutine would keep a
// wedged daemon alive.
func (d *Daemon) pingWatchdog(now time.Duration) {
	if now < d.nextPing {
		return
	}
	d.nextPing = now + d.watchdogEvery()
	if err := d.Notify.Send(sdnotify.Watchdog); err != nil && d.failLog.first("watchdog", now) {
		d.log.Warn("cannot ping the service manager's watchdog", "err", err)
	}
}

// notifyStatus sends the one-line role summary that systemctl status
// shows, when it has changed. Called with d.mu held.
func (d *Daemon) notifyStatus() {
	if d.Notify == nil {
		return
	}
	line := d.summary()
	if line == d.statusLine {
		return
	}
	d.statusLine = line
	d.Notify.Send(sdnotify.Status(line))
}

// summary is the status line: the first role's, and with several roles
// how many this node is master of. Called with d.mu held.
func (d *Daemon) summary() string {
	line := summary(d.state, d.cfg.ID, d.core.Maintenance())
	if len(d.roles) > 1 {
		n := 0
		for _, r := range d.roles {
			if r.state.Role == election.Master {
				n++
			}
		}
		line = fmt.Sprintf("%s: %s; master of %d of %d roles", d.name, line, n, len(d.roles))
	}
	return line
}

// summary is the role in one line for people: "master, term 7",
// "follower of a, term 7", "candidate, term 8, no master known", with
// ", maintenance" when on.
func summary(st election.State, self string, maintenance bool) string {
	var s string
	switch {
	case st.Role == election.Master:
		s = fmt.Sprintf("master, term %d", st.Term)
	case st.Master != "" && st.Master != self:
		s = fmt.Sprintf("%s of %s, term %d", roleName(st.Role), st.Master, st.Term)
	default:
		s = fmt.Sprintf("%s, term %d, no master known", roleName(st.Role), st.Term)
	}
	if maintenance {
		s += ", maintenance"
	}
	return s
}
