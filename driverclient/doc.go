// Package driverclient is the library a clustd driver is written with.
//
// A driver is a local program that acts out the master role: it starts a
// service, moves an address, pages someone. It connects to its own machine's
// clustd daemon and is told, in order and with the term as fencing token,
// every time that machine becomes or stops being the master. Implementing it
// takes one method:
//
//	type web struct{}
//
//	func (web) Trigger(ctx context.Context, s driverclient.State) error {
//		if s.IsMaster {
//			return startServing(ctx, s.Term) // fence downstream writes with s.Term
//		}
//		return stopServing(ctx)
//	}
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		defer stop()
//		secret, err := driverclient.ReadSecretFile("/etc/clustd/secret")
//		if err != nil {
//			log.Fatal(err)
//		}
//		err = driverclient.Run(ctx, driverclient.Options{Name: "web", Secret: secret}, web{})
//		if err != nil {
//			log.Fatal(err)
//		}
//	}
//
// # What the library guarantees
//
// Trigger is never called twice at once. A state that changes the role, the
// term or the master runs Trigger; a pure lease renewal does not. When
// changes arrive faster than Trigger finishes, the ones in between are
// skipped and the next call gets the latest state: a driver only ever needs
// to reach the newest state, not replay history.
//
// Every state is acknowledged to the daemon, in the order it was sent. A
// state that ran Trigger is acknowledged only after Trigger returned, with
// its error if it failed; the daemon waits for the acknowledgement of a
// demote before it hands leadership to another machine. A renewal is
// acknowledged at once unless an earlier state's Trigger is still running,
// in which case it waits for that one, so that an acknowledgement of state
// n always means states up to n were acted on.
//
// # The lease
//
// Each master state carries a lease deadline, an absolute reading of
// CLOCK_BOOTTIME, which every process on a host shares. While master, the
// library watches that deadline itself: if no renewal extends it in time —
// the daemon is paused, dead or unreachable — it cancels the context of a
// promote Trigger still running and calls Trigger with a demote it made up
// (State.Local is true). A renewal whose deadline has already passed when it
// arrives extends nothing: it was computed before a pause and proves nothing
// about now; a promote that arrives that late is not acted on, and its
// acknowledgement says why. Losing the connection changes nothing by itself, since the
// lease still holds until its deadline.
//
// The lease protects other machines only if the demote finishes before the
// deadline, so a promote Trigger should leave the work in a state that stops
// quickly, and a demote Trigger should be fast.
//
// Nothing in the library can act while its whole machine is frozen (a
// paused virtual machine, a cgroup freeze), and a service frozen with it
// runs again, when it thaws, before the library has noticed that the lease
// ran out. A Driver that implements LeaseWatcher is told its Lease as it
// changes, before the Trigger that acts on it, so that it, or a service it
// runs (LeaseFile keeps it in a file), can check the lease before each
// externally visible action; docs/drivers.md says why and how.
//
// # Connection
//
// Run connects to the daemon's local listener, proves that it knows the
// shared secret and checks that the daemon knows it too (a daemon that
// cannot prove it is never trusted), then follows the daemon's states. When
// the connection fails it reconnects for ever, with capped exponential
// backoff and full jitter, and sends the last health report again. When its
// context ends while master, Run calls Trigger with a demote before it
// returns.
package driverclient
