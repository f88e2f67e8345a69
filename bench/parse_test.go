package bench

import (
	"os"
	"reflect"
	"testing"
	"time"
)

func TestParseSS(t *testing.T) {
	out := "0      0      127.0.0.1:60638 127.0.0.1:24102 users:((\"clustd\",pid=17553,fd=15))\n" +
		"\t bbr wscale:10,10 rto:204 rtt:0.122/0.078 mss:32768 bytes_sent:12574 bytes_acked:12575 bytes_received:105 segs_out:436 segs_in:219 data_segs_out:432\n" +
		"0      0      127.0.0.1:60640 127.0.0.1:24102 users:((\"clustd\",pid=17549,fd=15),(\"clustd\",pid=17550,fd=3))\n" +
		"\t bbr bytes_sent:38363 bytes_retrans:37 bytes_acked:38327 segs_out:1133 segs_in:1110\n" +
		"0      0      [::1]:5000 [::1]:24103\n" +
		"\t cubic segs_out:7\n"
	got := parseSS(out)
	want := []socket{
		{Local: "127.0.0.1:60638", Remote: "127.0.0.1:24102", PIDs: []int{17553}, BytesSent: 12574, SegsOut: 436},
		{Local: "127.0.0.1:60640", Remote: "127.0.0.1:24102", PIDs: []int{17549, 17550}, BytesSent: 38363, SegsOut: 1133},
		{Local: "[::1]:5000", Remote: "[::1]:24103", SegsOut: 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSS:\n got %+v\nwant %+v", got, want)
	}
	if portOf(got[2].Remote) != 24103 || portOf("nonsense") != 0 {
		t.Error("portOf wrong")
	}
	if parseSS("") != nil {
		t.Error("empty output gave sockets")
	}
}

func TestParseBenchOutput(t *testing.T) {
	text := `goos: linux
pkg: github.com/clustd/clustd/election
cpu: Example
BenchmarkStepHeartbeat-2       	 3773176	       291.5 ns/op	       0 B/op	       0 allocs/op
BenchmarkStepHeartbeat-2       	 3773176	       300.5 ns/op	       0 B/op	       0 allocs/op
BenchmarkStepHeartbeat-2       	 3773176	       280.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkStepHeartbeatResp-2   	11089976	       171.1 ns/op	       16 B/op	       1 allocs/op
PASS
ok  	github.com/clustd/clustd/election	3.015s
pkg: github.com/clustd/clustd/sim
BenchmarkSimHour-2   	       2	 526413580 ns/op	106036792 B/op	  729999 allocs/op
BenchmarkNoMem 	       10	 5 ns/op
`
	got := parseBenchOutput(text)
	want := []MicroResult{
		{Package: "github.com/clustd/clustd/election", Name: "BenchmarkStepHeartbeat", Runs: 3, NsPerOp: 291.5},
		{Package: "github.com/clustd/clustd/election", Name: "BenchmarkStepHeartbeatResp", Runs: 1, NsPerOp: 171.1, BytesPerOp: 16, AllocsPerOp: 1},
		{Package: "github.com/clustd/clustd/sim", Name: "BenchmarkSimHour", Runs: 1, NsPerOp: 526413580, BytesPerOp: 106036792, AllocsPerOp: 729999},
		{Package: "github.com/clustd/clustd/sim", Name: "BenchmarkNoMem", Runs: 1, NsPerOp: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseBenchOutput:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseProcFiles(t *testing.T) {
	stat := []byte("1234 (clu std) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0\n")
	if got, err := parseStatCPU(stat); err != nil || got != 325 {
		t.Errorf("parseStatCPU = %v, %v; want 325", got, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1")); err == nil {
		t.Error("parseStatCPU accepted a short line")
	}
	status := []byte("Name:\tclustd\nVmHWM:\t   18000 kB\nVmRSS:\t   17000 kB\nRssAnon:\t    5000 kB\nThreads:\t9\nvoluntary_ctxt_switches:\t42\n")
	f := parseKeyValues(status, ':')
	if f["VmRSS"] != 17000 || f["VmHWM"] != 18000 || f["RssAnon"] != 5000 || f["Threads"] != 9 || f["voluntary_ctxt_switches"] != 42 {
		t.Errorf("parseKeyValues = %v", f)
	}
	if _, ok := f["Name"]; ok {
		t.Error("a text field was read as a number")
	}
}

func TestBusyPct(t *testing.T) {
	a := cpuTimes{Total: 1000, Idle: 800, Steal: 10}
	b := cpuTimes{Total: 3000, Idle: 2300, Steal: 30}
	busy, steal := busyPct(a, b)
	if busy != 25 || steal != 1 {
		t.Errorf("BusyPct = %v, %v; want 25, 1", busy, steal)
	}
	if busy, steal := busyPct(a, a); busy != 0 || steal != 0 {
		t.Error("no elapsed time should give zeros")
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKB <= 0 || s.Threads <= 0 || s.AnonKB <= 0 || s.CtxSwitches <= 0 {
		t.Errorf("implausible reading of this process: %+v", s)
	}
	if _, err := readProc(-1); err == nil {
		t.Error("readProc(-1) succeeded")
	}
}

func TestParsePressure(t *testing.T) {
	b := []byte("some avg10=38.01 avg60=21.84 avg300=15.73 total=1927267970\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	got, ok := parsePressure(b)
	if !ok || got != 1927267970*time.Microsecond {
		t.Errorf("parsePressure = %v, %v", got, ok)
	}
	if _, ok := parsePressure([]byte("full total=3\n")); ok {
		t.Error("parsePressure found a some line that is not there")
	}
}
