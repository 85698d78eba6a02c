package directory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// pool keeps service-account connections for reuse. At most size are in
// use or idle at once: a connection is dialed only when none is idle, and
// only by a caller holding one of size tokens.
type pool struct {
	dial func() (*ldap.Conn, error)
	// wait bounds the wait for a connection (the directory's timeout): a
	// flood of sign-ins against a slow directory must fail, not queue.
	wait   time.Duration
	tokens chan struct{}
	idle   chan *ldap.Conn

	mu     sync.Mutex // guards closed
	closed bool
}

func newPool(size int, wait time.Duration, dial func() (*ldap.Conn, error)) *pool {
	return &pool{dial: dial, wait: wait, tokens: make(chan struct{}, size), idle: make(chan *ldap.Conn, size)}
}

// get returns a bound connection, waiting for a token while size are in
// use. Return it with put.
func (p *pool) get(ctx context.Context) (*ldap.Conn, error) {
	if p.wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.wait)
		defer cancel()
	}
	select {
	case p.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a connection: %w", ErrUnavailable, ctx.Err())
	}
	for {
		select {
		case c := <-p.idle:
			// The server may have closed an idle connection (its idle
			// timeout, a restart): dial afresh rather than fail a request.
			if c.IsClosing() {
				c.Close()
				continue
			}
			return c, nil
		default:
		}
		break
	}
	c, err := p.dial()
	if err != nil {
		<-p.tokens
		return nil, err
	}
	return c, nil
}

// put returns c; a connection that failed (healthy false) is closed, as
// it may be left mid-exchange.
func (p *pool) put(c *ldap.Conn, healthy bool) {
	defer func() { <-p.tokens }()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if !healthy || closed || c.IsClosing() {
		c.Close()
		return
	}
	select {
	case p.idle <- c:
	default:
		c.Close()
	}
}

// close closes the idle connections; connections in use are closed when
// they are put back.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			c.Close()
		default:
			return
		}
	}
}
