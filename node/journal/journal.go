package journal

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sizes. A record is a few hundred bytes; the bounds are generous.
const (
	// DefaultMaxBytes bounds a journal directory when Options.MaxBytes is 0.
	DefaultMaxBytes = 8 << 20
	// MinMaxBytes is the smallest bound Open accepts.
	MinMaxBytes = 64 << 10
	// MaxRecord bounds one record's payload.
	MaxRecord = 16 << 10
	// segmentsPerBound: the oldest segment deleted at a time is this
	// fraction of the bound.
	segmentsPerBound = 8
	queueLen         = 1024
	headerLen        = 8
)

var (
	magic      = []byte("clustd-journal\x00\x01")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// ErrTooLarge is returned for an event whose encoding exceeds MaxRecord.
	ErrTooLarge = errors.New("journal: event too large")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("journal: closed")
)

// Options configure Open.
type Options struct {
	// Dir is the journal's directory, created if missing.
	Dir string
	// MaxBytes bounds the size of every file in Dir together. 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// NoSync skips the fsync after each batch (tests, benchmarks).
	NoSync bool
	// Logger receives recovery reports and write failures. May be nil.
	Logger *slog.Logger
}

// Journal is an append-only, size-bounded event log in a directory. Its
// methods are safe for concurrent use.
type Journal struct {
	dir     string
	max     int64
	segMax  int64
	noSync  bool
	log     *slog.Logger
	queue   chan Event
	done    chan struct{}
	closeMu sync.RWMutex // guards closed against Record racing Close
	closed  bool

	mu       sync.Mutex
	segs     []segment // oldest first; the last is active
	active   *os.File
	total    int64
	next     uint64
	dropped  uint64
	subs     map[*Subscription]struct{}
	writeErr error
}

type segment struct {
	first uint64 // seq of its first record (its name)
	size  int64
}

func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

// Open opens or creates the journal in opts.Dir, recovering from a torn
// last record, and starts its writer.
func Open(opts Options) (*Journal, error) {
	maxBytes := opts.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxBytes < MinMaxBytes {
		return nil, fmt.Errorf("journal: size bound %d bytes is below the minimum of %d", maxBytes, MinMaxBytes)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{
		dir: opts.Dir, max: maxBytes, segMax: maxBytes / segmentsPerBound, noSync: opts.NoSync, log: log,
		queue: make(chan Event, queueLen), done: make(chan struct{}), subs: map[*Subscription]struct{}{}, next: 1,
	}
	if err := j.recover(); err != nil {
		return nil, err
	}
	go j.writer()
	return j, nil
}

// recover lists the segments, finds the next sequence number and cuts a
// torn tail off the last segment.
func (j *Journal) recover() error {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".seg") {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil || segName(first) != name {
			continue
		}
		j.segs = append(j.segs, segment{first: first})
	}
	slices.SortFunc(j.segs, func(a, b segment) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	for i := range j.segs {
		last := i == len(j.segs)-1
		path := filepath.Join(j.dir, segName(j.segs[i].first))
		good, lastSeq, n, err := scanSegment(path, nil)
		if err != nil {
			return err
		}
		if n > 0 {
			j.next = lastSeq + 1
		} else if last && j.segs[i].first > j.next {
			j.next = j.segs[i].first
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if good != fi.Size() {
			j.log.Warn("journal: dropped a damaged or incomplete record (left by a crash)",
				"file", path, "at", good, "bytes_dropped", fi.Size()-good)
			if last {
				if good < headerLen {
					good = 0
				}
				if err := os.Truncate(path, good); err != nil {
					return fmt.Errorf("journal: cutting the torn end off %s: %w", path, err)
				}
			}
		}
		j.segs[i].size = good
		j.total += good
	}
	if len(j.segs) == 0 {
		return j.startSegment()
	}
	f, err := os.OpenFile(filepath.Join(j.dir, segName(j.segs[len(j.segs)-1].first)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.active = f
	if j.segs[len(j.segs)-1].size == 0 {
		if _, err := f.Write(magic[:headerLen]); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.segs[len(j.segs)-1].size = headerLen
		j.total += headerLen
	}
	return nil
}

// scanSegment reads the records of one segment, passing each to fn if it
// is not nil, and stops at the first damaged one. It returns the offset
// after the last good record, the last good sequence number and how many
// records were good. Only failing to open or read the file is an error.
func scanSegment(path string, fn func(Event) bool) (good int64, lastSeq uint64, n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || string(hdr[:]) != string(magic[:headerLen]) {
		return 0, 0, 0, nil
	}
	good = headerLen
	var buf []byte
	for {
		ev, size, err := readRecord(r, &buf)
		if err != nil {
			return good, lastSeq, n, nil
		}
		good += size
		lastSeq = ev.Seq
		n++
		if fn != nil && !fn(ev) {
			return good, lastSeq, n, nil
		}
	}
}

// readRecord reads one record; any error means the rest of the segment is
// unusable.
func readRecord(r io.Reader, buf *[]byte) (Event, int64, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Event{}, 0, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 || n > MaxRecord {
		return Event{}, 0, errors.New("bad record length")
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return Event{}, 0, err
	}
	if crc32.Checksum(b, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return Event{}, 0, errors.New("checksum mismatch")
	}
	ev, err := DecodeRecord(b)
	if err != nil {
		return Event{}, 0, err
	}
	return ev, int64(8 + n), nil
}

// DecodeRecord parses a record's payload, strictly.
func DecodeRecord(b []byte) (Event, error) {
	var ev Event
	if len(b) > MaxRecord {
		return Event{}, ErrTooLarge
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("journal record: %w", err)
	}
	if ev.Seq == 0 || ev.Kind == "" {
		return Event{}, errors.New("journal record: missing seq or kind")
	}
	if ev.Kind == KindFailover && ev.Failover == nil {
		return Event{}, errors.New("journal record: failover without its record")
	}
	return ev, nil
}

// encodeRecord frames ev for a segment.
func encodeRecord(ev Event) ([]byte, error) {
	p, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if len(p) > MaxRecord {
		return nil, ErrTooLarge
	}
	b := make([]byte, 8, 8+len(p))
	binary.BigEndian.PutUint32(b[:4], uint32(len(p)))
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(p, castagnoli))
	return append(b, p...), nil
}

// startSegment begins a new active segment named after the next sequence
// number. Called with j.mu held (or before the writer starts).
func (j *Journal) startSegment() error {
	if j.active != nil {
		if !j.noSync {
			j.active.Sync()
		}
		j.active.Close()
		j.active = nil
	}
	path := filepath.Join(j.dir, segName(j.next))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.Write(magic[:headerLen]); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	j.active = f
	j.segs = append(j.segs, segment{first: j.next, size: headerLen})
	j.total += headerLen
	if !j.noSync {
		syncDir(j.dir)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Record queues ev to be written and never blocks: when the writer is
// behind by more than a thousand events, ev is dropped and counted. Seq is
// assigned when it is written; a zero Time is set to now.
func (j *Journal) Record(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	j.closeMu.RLock()
	defer j.closeMu.RUnlock()
	if j.closed {
		return
	}
	select {
	case j.queue <- ev:
	default:
		j.mu.Lock()
		j.dropped++
		j.mu.Unlock()
	}
}

// Dropped is how many events Record dropped because the writer was behind.
func (j *Journal) Dropped() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.dropped
}

// Append writes ev at once and returns it with its sequence number.
func (j *Journal) Append(ev Event) (Event, error) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.active == nil {
		return Event{}, ErrClosed
	}
	ev, err := j.write(ev)
	if err == nil && !j.noSync {
		err = j.active.Sync()
	}
	if err != nil {
		return Event{}, err
	}
	j.notify(ev)
	return ev, nil
}

// write appends one record. Called with j.mu held.
func (j *Journal) write(ev Event) (Event, error) {
	ev.Seq = j.next
	rec, err := encodeRecord(ev)
	if err != nil {
		return Event{}, err
	}
	size := int64(len(rec))
	if j.segs[len(j.segs)-1].size+size > j.segMax && j.segs[len(j.segs)-1].size > headerLen {
		if err := j.startSegment(); err != nil {
			return Event{}, err
		}
	}
	for j.total+size > j.max && len(j.segs) > 1 {
		old := j.segs[0]
		if err := os.Remove(filepath.Join(j.dir, segName(old.first))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Event{}, fmt.Errorf("journal: deleting the oldest segment: %w", err)
		}
		j.segs = j.segs[1:]
		j.total -= old.size
	}
	if j.total+size > j.max {
		return Event{}, ErrTooLarge
	}
	// One write(2) per record: a crash leaves at most this one torn.
	if _, err := j.active.Write(rec); err != nil {
		// Whatever part of the record reached the file is cut off at the
		// next Open; carrying on after it would hide later records.
		return Event{}, fmt.Errorf("journal: %w", err)
	}
	j.segs[len(j.segs)-1].size += size
	j.total += size
	j.next++
	return ev, nil
}

// writer writes queued events in batches, with one fsync per batch.
func (j *Journal) writer() {
	defer close(j.done)
	for ev := range j.queue {
		j.mu.Lock()
		var wrote []Event
		for {
			if j.active != nil {
				if w, err := j.write(ev); err != nil {
					if j.writeErr == nil || j.writeErr.Error() != err.Error() {
						j.log.Error("journal: cannot write an event", "kind", ev.Kind, "err", err)
					}
					j.writeErr = err
				} else {
					j.writeErr = nil
					wrote = append(wrote, w)
				}
			}
			var more bool
			select {
			case ev, more = <-j.queue:
			default:
			}
			if !more {
				break
			}
		}
		if len(wrote) > 0 && !j.noSync && j.active != nil {
			j.active.Sync()
		}
		for _, w := range wrote {
			j.notify(w)
		}
		j.mu.Unlock()
	}
}

// Close writes what is queued and closes the journal.
func (j *Journal) Close() error {
	j.closeMu.Lock()
	if j.closed {
		j.closeMu.Unlock()
		return nil
	}
	j.closed = true
	close(j.queue)
	j.closeMu.Unlock()
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	for s := range j.subs {
		s.closeLocked()
	}
	var err error
	if j.active != nil {
		if !j.noSync {
			err = j.active.Sync()
		}
		if cerr := j.active.Close(); err == nil {
			err = cerr
		}
		j.active = nil
	}
	return err
}

// Size is the bytes the journal's segments take together.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.total
}

// LastSeq is the sequence number of the last event written, 0 if none.
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next - 1
}

// Query selects events for Read.
type Query struct {
	// AfterSeq selects events with a greater sequence number.
	AfterSeq uint64
	// Since selects events at or after this time, if not zero.
	Since time.Time
	// Failovers selects failover records only.
	Failovers bool
	// Limit bounds the answer; 0 means no bound. With AfterSeq set the
	// oldest matching events are returned (a page to continue from),
	// otherwise the newest.
	Limit int
}

func (q Query) match(ev *Event) bool {
	if ev.Seq <= q.AfterSeq {
		return false
	}
	if !q.Since.IsZero() && ev.Time.Before(q.Since) {
		return false
	}
	return !q.Failovers || ev.IsFailover()
}

// Read returns the events q selects, oldest first.
func (j *Journal) Read(q Query) ([]Event, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.readLocked(q)
}

func (j *Journal) readLocked(q Query) ([]Event, error) {
	var out []Event
	for i, s := range j.segs {
		if i+1 < len(j.segs) && j.segs[i+1].first <= q.AfterSeq+1 {
			continue // every record of this segment is at or before AfterSeq
		}
		full := false
		_, _, _, err := scanSegment(filepath.Join(j.dir, segName(s.first)), func(ev Event) bool {
			if !q.match(&ev) {
				return true
			}
			out = append(out, ev)
			if q.Limit > 0 && q.AfterSeq > 0 && len(out) >= q.Limit {
				full = true
				return false
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		if full {
			break
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// ReadDir reads the journal in dir without opening it for writing: for
// tools that look at a stopped node's journal, or a running one's, without
// repairing anything. A torn record ends its segment, as in Open.
func ReadDir(dir string, q Query) ([]Event, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // zero-padded: the order of their first records
	var out []Event
	for _, name := range names {
		_, _, _, err := scanSegment(filepath.Join(dir, name), func(ev Event) bool {
			if q.match(&ev) {
				out = append(out, ev)
			}
			return true
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// Subscription receives the events written after it was made.
type Subscription struct {
	j      *Journal
	c      chan Event
	closed bool
	// Lagged is set when the subscriber fell behind and lost events; C is
	// then closed.
	lagged bool
}

// Subscribe returns a subscription with room for buf events. A subscriber
// that falls further behind is cut off (its channel closed, Lagged true)
// rather than allowed to hold the journal back.
func (j *Journal) Subscribe(buf int) *Subscription {
	s := &Subscription{j: j, c: make(chan Event, buf)}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.active == nil {
		s.closed = true
		close(s.c)
		return s
	}
	j.subs[s] = struct{}{}
	return s
}

// SubscribeAfter reads the events q selects and subscribes to the later
// ones, with no event lost or repeated between the two: the writer holds
// the same lock while it writes and notifies.
func (j *Journal) SubscribeAfter(q Query, buf int) ([]Event, *Subscription, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	past, err := j.readLocked(q)
	if err != nil {
		return nil, nil, err
	}
	s := &Subscription{j: j, c: make(chan Event, buf)}
	if j.active == nil {
		s.closed = true
		close(s.c)
	} else {
		j.subs[s] = struct{}{}
	}
	return past, s, nil
}

// EndSubscriptions closes every subscription: an HTTP server shutting down
// waits for its streams to end.
func (j *Journal) EndSubscriptions() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for s := range j.subs {
		s.closeLocked()
	}
}

// C delivers the events.
func (s *Subscription) C() <-chan Event { return s.c }

// Lagged reports whether the subscription was cut off for falling behind.
func (s *Subscription) Lagged() bool {
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	return s.lagged
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	delete(s.j.subs, s)
	close(s.c)
}

// notify passes ev to the subscribers. Called with j.mu held.
func (j *Journal) notify(ev Event) {
	for s := range j.subs {
		select {
		case s.c <- ev:
		default:
			s.lagged = true
			s.closeLocked()
		}
	}
}
