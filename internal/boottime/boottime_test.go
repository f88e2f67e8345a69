package boottime

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeClocks is a machine's three clocks, moved by hand.
type fakeClocks struct {
	mono, wall, boot time.Duration
	bootReads        int
}

func (f *fakeClocks) readBoot() time.Duration { f.bootReads++; return f.boot }

func (f *fakeClocks) readGo() (time.Duration, time.Duration) { return f.mono, f.wall }

// run lets d pass on every clock, as when the machine is awake.
func (f *fakeClocks) run(d time.Duration) { f.mono += d; f.wall += d; f.boot += d }

func TestBootClock(t *testing.T) {
	type step struct {
		name string
		move func(f *fakeClocks)
		// syscall: whether this reading must read CLOCK_BOOTTIME itself.
		syscall bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"steady readings need no system call", []step{
			{"first reading calibrates", func(f *fakeClocks) {}, true},
			{"10ms later", func(f *fakeClocks) { f.run(10 * time.Millisecond) }, false},
			{"500ms later", func(f *fakeClocks) { f.run(490 * time.Millisecond) }, false},
		}},
		{"a resume is seen at the next reading", []step{
			{"calibrate", func(f *fakeClocks) {}, true},
			{"awake", func(f *fakeClocks) { f.run(20 * time.Millisecond) }, false},
			{"suspended 3s", func(f *fakeClocks) {
				f.wall += 3 * time.Second
				f.boot += 3 * time.Second
				f.run(time.Millisecond)
			}, true},
			{"awake again", func(f *fakeClocks) { f.run(5 * time.Millisecond) }, false},
		}},
		{"a short suspend is seen too", []step{
			{"calibrate", func(f *fakeClocks) {}, true},
			{"suspended 5ms", func(f *fakeClocks) {
				f.wall += 5 * time.Millisecond
				f.boot += 5 * time.Millisecond
			}, true},
		}},
		{"a wall clock step does not move the reading", []step{
			{"calibrate", func(f *fakeClocks) {}, true},
			{"wall set back an hour", func(f *fakeClocks) { f.wall -= time.Hour; f.run(time.Millisecond) }, true},
			{"wall set forward a day", func(f *fakeClocks) { f.wall += 24 * time.Hour; f.run(time.Millisecond) }, true},
			{"then steady", func(f *fakeClocks) { f.run(time.Millisecond) }, false},
		}},
		{"NTP slewing within 500 ppm is not a resume", []step{
			{"calibrate", func(f *fakeClocks) {}, true},
			{"wall runs 500 ppm fast", func(f *fakeClocks) {
				f.run(900 * time.Millisecond)
				f.wall += 450 * time.Microsecond
			}, false},
		}},
		{"recalibrated at least once a second", []step{
			{"calibrate", func(f *fakeClocks) {}, true},
			{"999ms", func(f *fakeClocks) { f.run(999 * time.Millisecond) }, false},
			{"1s", func(f *fakeClocks) { f.run(time.Millisecond) }, true},
			{"then steady", func(f *fakeClocks) { f.run(time.Millisecond) }, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeClocks{mono: 7 * time.Second, wall: 1e9 * time.Second, boot: 50 * time.Second}
			c := newBootClock(f.readBoot, f.readGo)
			for _, s := range tt.steps {
				s.move(f)
				before := f.bootReads
				got := c.now()
				if got != f.boot {
					t.Fatalf("%s: read %v, CLOCK_BOOTTIME is %v", s.name, got, f.boot)
				}
				if did := f.bootReads > before; did != s.syscall {
					t.Fatalf("%s: read CLOCK_BOOTTIME itself: %v, want %v", s.name, did, s.syscall)
				}
			}
		})
	}
}

// TestBootClockNeverGoesBack: a calibration that lands below an earlier
// reading (the two clocks are read at slightly different instants) must not
// make the clock go back.
func TestBootClockNeverGoesBack(t *testing.T) {
	f := &fakeClocks{mono: time.Second, wall: time.Hour, boot: 10 * time.Second}
	c := newBootClock(f.readBoot, f.readGo)
	first := c.now()
	f.run(2 * time.Second) // past resyncEvery
	f.boot -= time.Microsecond
	if got := c.now(); got < first+2*time.Second-time.Microsecond {
		t.Fatalf("read %v after %v", got, first)
	}
	f.boot -= 10 * time.Microsecond
	f.wall += time.Minute // forces a calibration
	high := c.now()
	f.run(0)
	if got := c.now(); got < high {
		t.Fatalf("went back from %v to %v", high, got)
	}
}

// TestNowMatchesBoottime compares the derived clock with the system
// call it replaces, from several goroutines at once.
func TestNowMatchesBoottime(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := Now()
			for range 2000 {
				var ts unix.Timespec
				if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
					t.Error(err)
					return
				}
				before := time.Duration(ts.Nano())
				got := Now()
				if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
					t.Error(err)
					return
				}
				after := time.Duration(ts.Nano())
				// The calibration pairs two clocks read a few
				// microseconds apart, retrying when preempted
				// between them; a millisecond is generous.
				if got < before-time.Millisecond || got > after+time.Millisecond {
					t.Errorf("Now() = %v, outside [%v, %v] of CLOCK_BOOTTIME", got, before, after)
					return
				}
				if got < prev {
					t.Errorf("Now() went back from %v to %v", prev, got)
					return
				}
				prev = got
			}
		}()
	}
	wg.Wait()
}
