package main

import (
	"context"

	"github.com/clustd/clustd/driverclient"
)

func Example_printState() {
	ctx := context.Background()
	_ = printState(ctx, driverclient.State{Role: "follower", Term: 3, Master: "db2"})
	_ = printState(ctx, driverclient.State{Role: "master", IsMaster: true, Term: 4, Master: "db1"})
	_ = printState(ctx, driverclient.State{Role: "follower", Term: 4, Local: true})
	// Output:
	// standby (master is db2)
	// master of term 4
	// standby (master is unknown)
}
