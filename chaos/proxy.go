package chaos

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// retransmitTimeout is the stall a "lost" chunk suffers in the proxy:
// Linux's minimum TCP retransmission timeout. Consecutive losses double it,
// as TCP's backoff does.
const retransmitTimeout = 200 * time.Millisecond

// linkTable holds the shaping of every directed link, shared by all proxies.
// The zero value is ready: every link is clean.
type linkTable struct {
	mu      sync.Mutex
	base    linkParams
	params  map[[2]int]linkParams
	changed chan struct{} // closed and replaced on every change
}

// SetBase sets the shaping of every link without one of its own.
func (l *linkTable) SetBase(p linkParams) {
	l.mu.Lock()
	l.base = p
	l.notifyLocked()
	l.mu.Unlock()
}

// Set sets the shaping of traffic from node from to node to.
func (l *linkTable) Set(from, to int, p linkParams) {
	l.mu.Lock()
	if l.params == nil {
		l.params = map[[2]int]linkParams{}
	}
	l.params[[2]int{from, to}] = p
	l.notifyLocked()
	l.mu.Unlock()
}

// Reset removes every link's own shaping, leaving the base.
func (l *linkTable) Reset() {
	l.mu.Lock()
	l.params = nil
	l.notifyLocked()
	l.mu.Unlock()
}

// Get returns the shaping of from→to, and a channel closed when any
// shaping changes next.
func (l *linkTable) Get(from, to int) (linkParams, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	p, ok := l.params[[2]int{from, to}]
	if !ok {
		p = l.base
	}
	return p, l.changed
}

func (l *linkTable) notifyLocked() {
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
}

// proxyOptions configure a proxy.
type proxyOptions struct {
	// Listener is where peers connect: the address the configuration
	// gives for node Dst.
	Listener net.Listener
	// Dst is the index of the node behind the proxy.
	Dst int
	// Dial connects to that node's real listener.
	Dial func(ctx context.Context) (net.Conn, error)
	// Identify tells which node opened an accepted connection, or -1. The
	// data it sends travels Src→Dst; the data coming back Dst→Src.
	Identify func(net.Conn) int
	// Links holds the shaping.
	Links *linkTable
	// Seed seeds the proxy's jitter and loss.
	Seed uint64
}

// proxy forwards TCP connections to one node, shaping each direction as
// its link says: the userspace stand-in for netem, which these kernels
// lack. Chunks keep their order; a chunk is held until its delivery time
// (arrival + delay + jitter, + stalls for loss), and never delivered
// before the chunk ahead of it.
type proxy struct {
	opts   proxyOptions
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	rnd   *rand.Rand
}

// newProxy starts a proxy; Close stops it.
func newProxy(opts proxyOptions) *proxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{opts: opts, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{},
		rnd: rand.New(rand.NewPCG(opts.Seed, uint64(opts.Dst)))}
	if p.opts.Links == nil {
		p.opts.Links = &linkTable{}
	}
	if p.opts.Identify == nil {
		p.opts.Identify = func(net.Conn) int { return -1 }
	}
	p.wg.Add(1)
	go p.accept()
	return p
}

// Addr is the address peers connect to.
func (p *proxy) Addr() net.Addr { return p.opts.Listener.Addr() }

// Close stops accepting, closes every connection and waits for all of the
// proxy's goroutines to end.
func (p *proxy) Close() error {
	p.cancel()
	err := p.opts.Listener.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.opts.Listener.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if !p.track(in) {
			in.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(in)
	}
}

func (p *proxy) serve(in net.Conn) {
	defer p.wg.Done()
	defer p.untrack(in)
	defer in.Close()
	src := p.opts.Identify(in)
	dctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	out, err := p.opts.Dial(dctx)
	cancel()
	if err != nil {
		return
	}
	if !p.track(out) {
		out.Close()
		return
	}
	defer p.untrack(out)
	defer out.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.pump(out, in, src, p.opts.Dst)
	}()
	go func() {
		defer wg.Done()
		p.pump(in, out, p.opts.Dst, src)
	}()
	wg.Wait()
}

// chunk is data read from one side, with when it may be delivered.
type chunk struct {
	b  []byte
	at time.Time
}

// pump copies r to w with from→to's shaping until r ends or either side
// fails. It half-closes w when r ends cleanly, so that each direction
// closes on its own as TCP's do; on failure it closes both.
func (p *proxy) pump(w, r net.Conn, from, to int) {
	queue := make(chan chunk, 256)
	readDone := make(chan struct{})
	go func() {
		defer close(queue)
		defer close(readDone)
		var last time.Time
		stall := retransmitTimeout
		for {
			buf := make([]byte, 32<<10)
			n, err := r.Read(buf)
			if n > 0 {
				lp, _ := p.opts.Links.Get(from, to)
				at := time.Now().Add(lp.Delay)
				p.mu.Lock()
				if lp.Jitter > 0 {
					at = at.Add(time.Duration(p.rnd.Int64N(int64(lp.Jitter))))
				}
				lost := lp.Loss > 0 && p.rnd.Float64() < lp.Loss
				p.mu.Unlock()
				if lost {
					at = at.Add(stall)
					stall = min(2*stall, 4*time.Second)
				} else {
					stall = retransmitTimeout
				}
				if at.Before(last) {
					at = last
				}
				last = at
				select {
				case queue <- chunk{b: buf[:n], at: at}:
				case <-p.ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	ok := p.deliver(w, queue, from, to)
	if ok {
		if tc, isTCP := w.(interface{ CloseWrite() error }); isTCP {
			tc.CloseWrite()
		} else {
			w.Close()
		}
	} else {
		w.Close()
		r.Close()
		// Unblock the reader if it waits to queue.
		for range queue {
		}
	}
	<-readDone
}

// deliver writes the queued chunks at their times, holding them while the
// link is blocked. It reports whether the queue ended cleanly.
func (p *proxy) deliver(w net.Conn, queue <-chan chunk, from, to int) bool {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for c := range queue {
		if wait := time.Until(c.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-p.ctx.Done():
				return false
			}
		}
		for {
			lp, changed := p.opts.Links.Get(from, to)
			if !lp.Block {
				break
			}
			select {
			case <-changed:
			case <-p.ctx.Done():
				return false
			}
		}
		if _, err := w.Write(c.b); err != nil {
			return false
		}
	}
	return true
}
