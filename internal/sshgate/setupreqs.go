package sshgate

import (
	"slices"

	"golang.org/x/crypto/ssh"
)

// setupRequests takes a session channel's requests while its setup runs
// (decision, dial, login, audit, recording, the target's answer to the
// shell, exec or subsystem request: up to the upstream DialTimeout and
// more).
//
// Nobody else reads the channel's requests then, and its queue is 2 deep
// (sshx item 8): a client that resizes its terminal three times, or sends
// env or a signal meanwhile, filled it, and the connection's read loop,
// which waits on a full queue, stopped every other channel on the
// connection (sessions, tunnels, window adjustments, the hang-up) until
// the setup ended.
//
// The requests are kept (heldRequests), not answered: SSH replies go in
// the order of the requests, and the session request that started the
// setup is answered only when the setup ends. Then finish replays them as
// the running session's request loop would have taken them
// (forwardClientRequest), or refuse answers them as a refused session
// does. One goroutine runs while the setup does, and none after.
type setupRequests struct {
	stopc chan struct{}
	done  chan struct{}
	held  heldRequests // the goroutine's until done is closed
}

// holdRequests starts taking reqs; the caller must call stop.
func holdRequests(reqs <-chan *ssh.Request) *setupRequests {
	s := &setupRequests{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case r, ok := <-reqs:
				if !ok {
					// The client closed the channel: whoever reads reqs
					// next sees it closed too.
					return
				}
				s.held.add(r)
			case <-s.stopc:
				return
			}
		}
	}()
	return s
}

// stop ends the goroutine and returns what it kept. Requests it did not
// take stay queued for the next reader, after the kept ones.
func (s *setupRequests) stop() *heldRequests {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.done
	return &s.held
}

// Bounds on the requests held during a session's setup: 32 requests (and
// one resize) of at most 256 bytes each (a window-change is 16 bytes, a signal its name). A
// client that resizes its window a thousand times costs one (only the
// latest size is kept).
const (
	maxHeldRequests = 32
	maxHeldPayload  = 256
)

// heldRequests are a session's requests taken during its setup, in
// order. Bridged ones (window-change, signal, break, eow) are kept with
// their payload for the target; any other that wants a reply is kept
// without it, for its refusal to be sent in its turn.
type heldRequests struct {
	list []*ssh.Request
	// full is set by the first request past a bound: from then on only
	// resizes are kept (they owe no reply). So every reply owed to a
	// refused request comes after those owed to the kept ones, and the
	// refusals can be answered last, through owedVia, without keeping
	// each request.
	full    bool
	owed    int          // refusals owed past the bounds
	owedVia *ssh.Request // one of those requests (without its payload)
	refused int          // requests refused past the bounds, replies or not
}

// add takes one request.
func (h *heldRequests) add(r *ssh.Request) {
	forward := bridgedRequests[r.Type]
	if !forward && !r.WantReply {
		// Refused without a word, as once the session runs.
		return
	}
	if !forward {
		r.Payload = nil
	}
	tooLarge := len(r.Payload) > maxHeldPayload
	if isPlainResize(r) && !tooLarge {
		// Only the latest size matters. An earlier resize owes no reply
		// and goes; the order of the others is kept.
		if i := slices.IndexFunc(h.list, isPlainResize); i >= 0 {
			h.list = append(slices.Delete(h.list, i, i+1), r)
			return
		}
	}
	// A resize with none held is kept even past the bound (the one extra
	// slot a session can hold): refusing it would leave the target's
	// terminal at a stale size, and a resize owes no reply.
	if !tooLarge && isPlainResize(r) {
		h.list = append(h.list, r)
		return
	}
	if h.full || tooLarge || len(h.list) >= maxHeldRequests {
		h.full = true
		h.refused++
		if r.WantReply {
			h.owed++
			if h.owedVia == nil {
				r.Payload = nil
				h.owedVia = r
			}
		}
		return
	}
	h.list = append(h.list, r)
}

func isPlainResize(r *ssh.Request) bool { return r.Type == "window-change" && !r.WantReply }

// replay hands the held requests, in order, to the running session's
// rule: each is passed to forward, then the refusals owed past the
// bounds are answered. It returns how many requests were refused past
// the bounds.
func (h *heldRequests) replay(forward func(*ssh.Request)) int {
	for _, r := range h.list {
		forward(r)
	}
	h.answerOwed()
	return h.refused
}

// refuse answers every held request that wants a reply with a failure,
// for a session that does not run. It returns how many requests were
// refused past the bounds.
func (h *heldRequests) refuse() int {
	for _, r := range h.list {
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
	}
	h.answerOwed()
	return h.refused
}

func (h *heldRequests) answerOwed() {
	for range h.owed {
		// A failure reply names only the channel: any of its requests
		// can carry it.
		_ = h.owedVia.Reply(false, nil)
	}
	h.list, h.owed, h.owedVia = nil, 0, nil
}
