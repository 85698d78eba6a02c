package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis/portcullis/internal/resource"
)

// ErrNotUsed is returned by Pending.Login when the connection made ahead
// failed or ended before any credential was offered: the caller dials
// anew with Dial, which checks, learns and audits as always.
var ErrNotUsed = errors.New("connection made ahead not usable")

// errUnknownHostKey ends a connection made ahead to a target whose host key
// is neither pinned nor learned: learning it is left to Dial.
var errUnknownHostKey = errors.New("host key not known yet")

// Pending is a connection to a target made ahead of need, while the
// gateway's own client is still authenticating: TCP, key exchange and the
// host-key check run in its goroutine, which then waits, before any
// credential, for Login to hand it one or for Close.
//
// What a target learns before Login: a connection from the gateway and the
// login name (the "none" probe every SSH client sends first). It gets no
// credential until Login, and Login is only called for an authorized
// request. A host key that does not match, or is not known yet, ends the
// connection without an audit event or a learned key: the Dial that
// follows finds the same and records it, so the audit trail is what it
// would have been without the connection made ahead.
type Pending struct {
	// What the connection was made to, for Matches.
	target, address, hostKey, user string
	timeout                        time.Duration // Config.Timeout, for Login

	signer chan ssh.Signer // buffered: Login hands over at most one
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine is over

	// Set by the goroutine before done is closed.
	offered bool // the credential was asked for: a login was attempted
	sc      ssh.Conn
	chans   <-chan ssh.NewChannel
	reqs    <-chan *ssh.Request
	err     error

	mu   sync.Mutex
	used bool // Login or Close was called
}

// Matches reports whether the connection was made to target, as it is
// now (same address and pinned key), for user: a request that means
// anything else must not use it.
func (p *Pending) Matches(target *resource.Target, user string) bool {
	return target != nil && target.Name == p.target && target.Address == p.address &&
		target.HostKey == p.hostKey && user == p.user
}

// Prepare starts a connection ahead of need to cfg.Target as cfg.User and
// returns at once. cfg.Signer and cfg.Audit are not used: the credential
// comes with Login, and nothing is audited before it. wait bounds how long
// the connection waits for Login after its handshake, on top of
// cfg.Timeout; past it the connection ends and Login returns ErrNotUsed.
func Prepare(ctx context.Context, cfg Config, wait time.Duration) (*Pending, error) {
	if cfg.Target == nil || cfg.HostKeys == nil || cfg.User == "" {
		return nil, errors.New("upstream: Target, User and HostKeys are required")
	}
	cfg.Signer, cfg.Audit = nil, nil
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout()+wait)
	p := &Pending{
		target: cfg.Target.Name, address: cfg.Target.Address, hostKey: cfg.Target.HostKey, user: cfg.User,
		timeout: cfg.timeout(),
		signer:  make(chan ssh.Signer, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	// Owned by p: it ends when the login is over, or when Close or the
	// wait's deadline cancels ctx.
	go func() {
		defer close(p.done)
		p.run(ctx, cfg)
	}()
	return p, nil
}

// run makes the connection and waits for the credential; it ends with the
// fields Login reads set.
func (p *Pending) run(ctx context.Context, cfg Config) {
	nc, err := dialTCP(ctx, &cfg)
	if err != nil {
		p.err = err
		return
	}
	// Closing the connection is what unblocks a handshake in progress
	// when the wait is over or Close is called.
	unblock := context.AfterFunc(ctx, func() { nc.Close() })
	defer unblock()
	hk := &hostKeyCheck{ctx: ctx, cfg: &cfg, ahead: true}
	auth := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		select {
		case s := <-p.signer:
			p.offered = true
			return []ssh.Signer{s}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	sc, chans, reqs, err := ssh.NewClientConn(nc, cfg.Target.Address, clientConfig(&cfg, hk, auth))
	if err != nil {
		nc.Close()
		p.err = fmt.Errorf("log in to %s as %s: %w", cfg.Target.Name, cfg.User, err)
		return
	}
	if !unblock() {
		// The wait ended as the login finished: nc is already closed.
		sc.Close()
		p.err = fmt.Errorf("log in to %s as %s: %w", cfg.Target.Name, cfg.User, ctx.Err())
		return
	}
	_ = nc.SetDeadline(time.Time{})
	p.sc, p.chans, p.reqs = sc, chans, reqs
}

// Login offers signer to the target and returns the logged-in connection,
// as Dial would. ErrNotUsed means the connection failed or ended before the
// credential was offered (the target dropped it, its host key did not
// match or is not known yet, the wait ran out): dial anew. Any other error
// is the target's answer to the credential, or ErrUnreachable when the
// target did not finish within Config.Timeout of the call, as Dial's
// bound. Login may be called once.
func (p *Pending) Login(signer ssh.Signer) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	p.mu.Lock()
	if p.used {
		p.mu.Unlock()
		return nil, nil, nil, ErrNotUsed
	}
	p.used = true
	p.mu.Unlock()
	defer p.cancel()
	p.signer <- signer
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cancel()
		<-p.done
		if p.err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %s did not finish logging in within %v", ErrUnreachable, p.target, p.timeout)
		}
	}
	switch {
	case p.err == nil:
		return p.sc, p.chans, p.reqs, nil
	case !p.offered:
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrNotUsed, p.err)
	}
	return nil, nil, nil, p.err
}

// Close ends a connection that Login did not take, and waits for its
// goroutine; after Login it does nothing.
func (p *Pending) Close() {
	p.mu.Lock()
	used := p.used
	p.used = true
	p.mu.Unlock()
	if used {
		return
	}
	p.cancel()
	<-p.done
	if p.sc != nil {
		p.sc.Close()
	}
}
