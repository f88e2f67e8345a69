package common

import (
	"os"
	"strconv"
	"syscall"
	"testing"
)

func TestProcStat(t *testing.T) {
	state, pg, ok := procStat(strconv.Itoa(os.Getpid()))
	if !ok || state == 'Z' || pg != syscall.Getpgrp() {
		t.Errorf("procStat(self) = %c, %d, %v; want running in group %d", state, pg, ok, syscall.Getpgrp())
	}
	if _, _, ok := procStat("999999999"); ok {
		t.Error("procStat of a missing process succeeded")
	}
}
