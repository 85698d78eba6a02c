package agent_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/agent"
	"github.com/portcullis/portcullis/internal/audit"
)

// dialLog records when agents dial the gateway, and which agent dialed.
type dialLog struct {
	mu    sync.Mutex
	times []time.Time
	names []string
}

// dialer is the Config.Dial of the agent named name.
func (d *dialLog) dialer(name string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d.mu.Lock()
		d.times = append(d.times, time.Now())
		d.names = append(d.names, name)
		d.mu.Unlock()
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", addr)
	}
}

func (d *dialLog) since(t time.Time) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []time.Time
	for _, x := range d.times {
		if !x.Before(t) {
			out = append(out, x)
		}
	}
	return out
}

// firstSince is each agent's first dial at or after t: the return the
// gateway spreads. An agent's later dials are retries after a failed
// attempt, paced by its own backoff; on a loaded machine (make test
// under -race) handshakes time out and retries bunch, which says
// nothing about the spread.
func (d *dialLog) firstSince(t time.Time) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	var out []time.Time
	for i, x := range d.times {
		if !x.Before(t) && !seen[d.names[i]] {
			seen[d.names[i]] = true
			out = append(out, x)
		}
	}
	return out
}

// countSince is how many times the agent named name dialed at or after t.
func (d *dialLog) countSince(name string, t time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for i, x := range d.times {
		if !x.Before(t) && d.names[i] == name {
			n++
		}
	}
	return n
}

// maxPerSecond is the most dials in any one-second window.
func maxPerSecond(ts []time.Time) int {
	best := 0
	for i := range ts {
		n := 0
		for _, u := range ts[i:] {
			if u.Sub(ts[i]) < time.Second {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

// TestRestartUnderManyAgents restarts the gateway under 200 connected
// agents. The gateway asks them, as it goes away, to spread their return
// over agents/ReconnectRate seconds; the agents' first dials back per
// second stay under a cap, all come back, and none redials while it is
// connected. The figures are printed; the bounds are loose (a loaded
// machine), the storm they guard against is not.
func TestRestartUnderManyAgents(t *testing.T) {
	const (
		agents = 200
		rate   = 25 // per second, the gateway's ReconnectRate
		// cap is 2.4 times the rate: uniform spreading gives the rate on
		// average, and the dials that came before the gateway was back
		// retry within the same window. Without the spread, all 200
		// come back within the same second.
		cap = 60
		// bound only stops a test whose agents never come back: it is
		// no timing target (make test shares 2 cores among packages
		// under -race, where failed handshakes push agents to their
		// 60 s backoff). The time they took is printed, for make bench
		// and the notes.
		bound = 4 * time.Minute
	)
	g := startGateway(t, "1.4.0")
	g.rate = rate
	// Heartbeats at the production interval: 200 agents under -race on
	// a shared machine can miss a 3 s one, and then an agent rightly
	// redials and replaces its own connection, which is not what this
	// test is about.
	g.heartbeat = 15 * time.Second
	g.stop()
	g.start()
	_, key := g.newKey(nil)
	dials := &dialLog{}
	all := make([]*agent.Agent, agents)
	for i := range all {
		name := fmt.Sprintf("node-%03d", i)
		a, _ := newAgent(t, g, name, key, func(c *agent.Config) {
			c.Dial = dials.dialer(name)
			c.Log = quiet()
		})
		if err := a.Register(context.Background()); err != nil {
			t.Fatal(err)
		}
		all[i] = a
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, a := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = a.Run(ctx)
		}()
	}
	allConnected := func() bool {
		srv := g.server()
		if srv == nil {
			return false
		}
		for _, a := range all {
			if !srv.Connected(a.Target()) {
				return false
			}
		}
		return true
	}
	// 200 first handshakes at once under -race on a loaded machine
	// time out and back off (up to 60 s): this wait has the same loose
	// bound as the return after the restart, not waitFor's 30 s.
	waitWithin(t, bound, "every agent to connect", allConnected)

	// Connected agents do not redial: heartbeats (1 s here) go over the
	// connection they have.
	steady := time.Now()
	time.Sleep(3 * time.Second)
	if n := len(dials.since(steady)); n != 0 {
		t.Fatalf("%d dials while every agent was connected", n)
	}

	stopped := time.Now()
	g.stop()
	time.Sleep(500 * time.Millisecond)
	g.start()
	deadline := time.Now().Add(bound)
	for !allConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("not every agent was back within %v", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	back := time.Since(stopped)
	// Let stragglers that are still dialing show up in the count.
	time.Sleep(2 * time.Second)
	after := dials.since(stopped)
	peak := maxPerSecond(dials.firstSince(stopped))
	t.Logf("gateway restarted under %d agents: all back %.1f s after it stopped (down 0.5 s); %d dials, at most %d first returns in one second (cap %d, spread asked %.1f s; all dials: at most %d in one second)",
		agents, back.Seconds(), len(after), peak, cap, float64(agents)/rate, maxPerSecond(after))
	fmt.Printf("agent restart: %d agents back in %.1f s; peak %d reconnects/s (cap %d); %d dials\n",
		agents, back.Seconds(), peak, cap, len(after))
	if peak > cap {
		t.Fatalf("%d agents came back in one second, over the cap of %d", peak, cap)
	}
	// No agent held two connections at once. A connection may replace
	// another of the same agent only when the agent gave up an earlier
	// attempt (a handshake or heartbeat that timed out on a loaded
	// machine, and the gateway had not yet seen that connection end);
	// an agent that dialed once since the restart and still replaced a
	// connection would mean one from before the restart survived it.
	for _, ev := range g.events(audit.AgentConnect) {
		since := stopped
		if ev.Time.Before(stopped) {
			since = time.Time{}
		}
		if ev.Detail["replaced"] == true && dials.countSince(ev.Target, since) < 2 {
			t.Fatalf("a connection replaced another of an agent that dialed once since the restart: %+v", ev)
		}
	}
}
