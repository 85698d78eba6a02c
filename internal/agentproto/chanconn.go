package agentproto

import (
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// ChannelConn is an SSH channel as a net.Conn, so that an SSH connection
// (the gateway's login to the target) runs over it as over TCP. A deadline
// closes the channel when it passes rather than failing one read: the
// SSH handshake it bounds is abandoned anyway.
type ChannelConn struct {
	ssh.Channel
	Local, Remote net.Addr

	mu    sync.Mutex
	timer *time.Timer
}

// NewChannelConn wraps ch; local and remote are what LocalAddr and
// RemoteAddr report (the connection the channel rides on).
func NewChannelConn(ch ssh.Channel, local, remote net.Addr) *ChannelConn {
	return &ChannelConn{Channel: ch, Local: local, Remote: remote}
}

// LocalAddr implements net.Conn.
func (c *ChannelConn) LocalAddr() net.Addr { return c.Local }

// RemoteAddr implements net.Conn.
func (c *ChannelConn) RemoteAddr() net.Addr { return c.Remote }

// SetDeadline closes the channel at t; the zero time cancels it.
func (c *ChannelConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if !t.IsZero() {
		c.timer = time.AfterFunc(time.Until(t), func() { _ = c.Channel.Close() })
	}
	return nil
}

// SetReadDeadline is SetDeadline.
func (c *ChannelConn) SetReadDeadline(t time.Time) error { return c.SetDeadline(t) }

// SetWriteDeadline is SetDeadline.
func (c *ChannelConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

// Close stops the deadline and closes the channel.
func (c *ChannelConn) Close() error {
	_ = c.SetDeadline(time.Time{})
	return c.Channel.Close()
}
