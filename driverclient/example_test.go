package driverclient_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/clustd/clustd/driverclient"
	"github.com/clustd/clustd/driverproto"
)

// A driver is one method. This one only says what it would do; a real one
// starts and stops a service, moves an address, and so on.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	secret, err := driverclient.ReadSecretFile("/etc/clustd/secret")
	if err != nil {
		log.Fatal(err)
	}
	trigger := func(ctx context.Context, s driverclient.State) error {
		if s.IsMaster {
			// Hand s.Term to whatever must refuse an older master.
			fmt.Println("master of term", s.Term)
		} else {
			fmt.Println("standby; master is", s.Master)
		}
		return nil
	}
	err = driverclient.Run(ctx, driverclient.Options{Name: "hello", Secret: secret}, driverclient.TriggerFunc(trigger))
	if err != nil {
		log.Fatal(err)
	}
}

// Run blocks until its context ends, reconnecting to the daemon whenever
// it has to; before returning it demotes the driver if it was master.
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	secret, err := driverclient.ReadSecretFile("/etc/clustd/secret")
	if err != nil {
		log.Fatal(err)
	}
	opts := driverclient.Options{
		Addr:   "127.0.0.1:3001",
		Secret: secret,
		Name:   "vip",
		// The node may not become master while this driver is missing
		// or unhealthy: without it, being master would achieve nothing.
		Required: true,
	}
	err = driverclient.Run(ctx, opts, driverclient.TriggerFunc(func(ctx context.Context, s driverclient.State) error {
		if s.IsMaster {
			return addAddress(ctx, "192.0.2.10/24")
		}
		return removeAddress(ctx, "192.0.2.10/24")
	}))
	if err != nil {
		log.Fatal(err)
	}
}

// A driver that checks its own readiness tells the daemon, so that a
// required driver that cannot work keeps its node from becoming master.
func ExampleClient_SetHealth() {
	secret, err := driverclient.ReadSecretFile("/etc/clustd/secret")
	if err != nil {
		log.Fatal(err)
	}
	c, err := driverclient.New(driverclient.Options{Name: "db", Secret: secret, Required: true},
		driverclient.TriggerFunc(func(ctx context.Context, s driverclient.State) error { return nil }))
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for ok := range diskChecks() {
			if ok {
				c.SetHealth(true, "")
			} else {
				c.SetHealth(false, "the data disk is read-only")
			}
		}
	}()
	if err := c.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// With OnEvent set, the driver also receives the daemon's event stream:
// elections, role changes, members lost and back.
func ExampleOptions_onEvent() {
	secret, err := driverclient.ReadSecretFile("/etc/clustd/secret")
	if err != nil {
		log.Fatal(err)
	}
	opts := driverclient.Options{
		Name:   "monitor",
		Secret: secret,
		OnEvent: func(ev driverproto.Event) {
			fmt.Printf("%s on %s in term %d: %s\n", ev.Kind, ev.Node, ev.Term, ev.Detail)
		},
	}
	nothing := driverclient.TriggerFunc(func(context.Context, driverclient.State) error { return nil })
	if err := driverclient.Run(context.Background(), opts, nothing); err != nil {
		log.Fatal(err)
	}
}

func addAddress(context.Context, string) error    { return nil }
func removeAddress(context.Context, string) error { return nil }
func diskChecks() <-chan bool                     { return nil }
