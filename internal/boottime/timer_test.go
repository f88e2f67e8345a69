package boottime

import (
	"testing"
	"time"
)

func TestBootTimerFires(t *testing.T) {
	for _, d := range []time.Duration{20 * time.Millisecond, 0, -time.Second} {
		start := Now()
		bt, err := NewTimer(d)
		if err != nil {
			t.Fatalf("timerfd on CLOCK_BOOTTIME: %v", err)
		}
		select {
		case <-bt.C():
		case <-time.After(10 * time.Second):
			t.Fatalf("a timer of %v had not fired after 10 s", d)
		}
		if elapsed := Now() - start; elapsed < d {
			t.Errorf("a timer of %v fired after %v of CLOCK_BOOTTIME", d, elapsed)
		}
		bt.Stop()
		<-bt.done
	}
}

func TestBootTimerStop(t *testing.T) {
	bt, err := NewTimer(time.Hour)
	if err != nil {
		t.Fatalf("timerfd on CLOCK_BOOTTIME: %v", err)
	}
	bt.Stop()
	select {
	case <-bt.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end the timer's goroutine")
	}
	select {
	case <-bt.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	bt.Stop() // twice is harmless
}

// Reset moves a waiting timer's deadline, and refuses once it has fired.
func TestBootTimerReset(t *testing.T) {
	tm, err := NewTimer(time.Hour)
	if err != nil {
		t.Skipf("no timerfd here: %v", err)
	}
	defer tm.Stop()
	start := Now()
	if !tm.Reset(20 * time.Millisecond) {
		t.Fatal("Reset of a waiting timer reported false")
	}
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("the timer reset from an hour to 20 ms did not fire")
	}
	if got := Now() - start; got < 20*time.Millisecond {
		t.Errorf("fired %v after the reset, before the 20 ms", got)
	}
	<-tm.done
	if tm.Reset(time.Millisecond) {
		t.Error("Reset of a timer that has fired reported true")
	}
}
