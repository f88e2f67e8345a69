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
