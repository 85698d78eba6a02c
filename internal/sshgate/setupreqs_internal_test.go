package sshgate

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func resize(cols uint32) *ssh.Request {
	return &ssh.Request{Type: "window-change", Payload: ssh.Marshal(struct{ C, R, W, H uint32 }{cols, 24, 0, 0})}
}

func signal(name string, wantReply bool) *ssh.Request {
	return &ssh.Request{Type: "signal", WantReply: wantReply, Payload: ssh.Marshal(struct{ Name string }{name})}
}

// describe names the held requests in order: a resize by its columns, a
// signal by its name, anything else by its type and whether it still has
// a payload.
func describe(list []*ssh.Request) string {
	var out []string
	for _, r := range list {
		switch r.Type {
		case "window-change":
			cols, _, _ := windowChange(r.Payload)
			out = append(out, "wc"+strings.Repeat("+", cols-80))
		case "signal":
			var p struct{ Name string }
			_ = ssh.Unmarshal(r.Payload, &p)
			out = append(out, p.Name)
		default:
			s := r.Type
			if r.Payload != nil {
				s += "(payload)"
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// Resizes are coalesced to the latest in its place in the order; what a
// running session refuses without a reply is not kept; what it refuses
// with one is kept without its payload, for the failure to go in its
// turn.
func TestHeldRequestsKeepOrderAndLatestSize(t *testing.T) {
	var h heldRequests
	h.add(resize(81))
	h.add(signal("INT", false))
	h.add(&ssh.Request{Type: "env", Payload: []byte("x")})
	h.add(&ssh.Request{Type: "exec", WantReply: true, Payload: []byte("second")})
	h.add(resize(82))
	h.add(resize(83))
	h.add(&ssh.Request{Type: "break", Payload: ssh.Marshal(struct{ Ms uint32 }{0})})
	if got, want := describe(h.list), "INT exec wc+++ break(payload)"; got != want {
		t.Fatalf("held %q, want %q", got, want)
	}
	var forwarded []string
	if n := h.replay(func(r *ssh.Request) { forwarded = append(forwarded, r.Type) }); n != 0 {
		t.Errorf("%d refused, want 0", n)
	}
	if want := []string{"signal", "exec", "window-change", "break"}; !slices.Equal(forwarded, want) {
		t.Errorf("replayed %v, want %v", forwarded, want)
	}
}

// Past the bound everything is refused but a resize that replaces a held
// one, and the refusals owed are answered after every kept request's.
func TestHeldRequestsBound(t *testing.T) {
	var h heldRequests
	h.add(resize(81))
	for range maxHeldRequests - 1 {
		h.add(signal("USR1", true))
	}
	if len(h.list) != maxHeldRequests || h.full {
		t.Fatalf("%d held, full %v; want %d, not full", len(h.list), h.full, maxHeldRequests)
	}
	over := signal("INT", true)
	h.add(over)
	h.add(signal("TERM", false))
	h.add(resize(85)) // replaces the held one: kept, last
	h.add(&ssh.Request{Type: "window-change", WantReply: true, Payload: resize(86).Payload})
	if !h.full || h.refused != 3 || h.owed != 2 || h.owedVia != over || over.Payload != nil {
		t.Fatalf("full %v, refused %d, owed %d, owedVia %v (payload %v); want full, 3 refused, 2 owed through the first refused",
			h.full, h.refused, h.owed, h.owedVia == over, over.Payload)
	}
	if len(h.list) != maxHeldRequests || describe(h.list[len(h.list)-1:]) != "wc+++++" {
		t.Fatalf("held %d, last %q; want %d, the latest resize last", len(h.list), describe(h.list[len(h.list)-1:]), maxHeldRequests)
	}

	// A resize that comes once the bound is reached, with none held, is
	// still kept (the target must end at the client's size): one slot
	// past the bound, replaced by later resizes.
	var f heldRequests
	for range maxHeldRequests {
		f.add(signal("USR1", true))
	}
	f.add(signal("INT", true))
	f.add(resize(84))
	f.add(resize(85))
	if f.refused != 1 || len(f.list) != maxHeldRequests+1 || describe(f.list[maxHeldRequests:]) != "wc+++++" {
		t.Fatalf("refused %d, held %d, last %q; want 1, %d, the latest resize last", f.refused, len(f.list), describe(f.list[len(f.list)-1:]), maxHeldRequests+1)
	}

	// A payload no bridged request needs is refused, and so is all that
	// follows but resizes (the replies stay in order).
	var g heldRequests
	g.add(&ssh.Request{Type: "signal", Payload: make([]byte, maxHeldPayload+1)})
	g.add(signal("INT", false))
	g.add(resize(81))
	if g.refused != 2 || describe(g.list) != "wc+" {
		t.Fatalf("refused %d, held %q; want 2, wc+", g.refused, describe(g.list))
	}
}

// holdRequests takes requests as they come, until stopped or the channel
// closes; what it did not take stays for the next reader.
func TestHoldRequestsStops(t *testing.T) {
	reqs := make(chan *ssh.Request, 1)
	s := holdRequests(reqs)
	unbuffered := make(chan *ssh.Request)
	u := holdRequests(unbuffered)
	for i := range 5 {
		unbuffered <- resize(uint32(81 + i)) // each is taken before the next send
	}
	close(unbuffered)
	if got := describe(u.stop().list); got != "wc+++++" {
		t.Errorf("held %q, want the latest resize", got)
	}
	held := s.stop()
	reqs <- signal("INT", false)
	if len(held.list) != 0 || len(reqs) != 1 {
		t.Errorf("stopped, it still took a request")
	}
	s.stop() // a second stop is harmless
}
