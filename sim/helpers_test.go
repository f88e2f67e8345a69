package sim

import "github.com/clustd/clustd/election"

func defaultTiming() election.Timing { return election.MustProfile(election.ProfileDefault) }
