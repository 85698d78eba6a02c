// Copyright 2012 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

import (
	"io"
	"sync"
)

// buffer provides a linked list buffer for data exchange
// between producer and consumer. Theoretically the buffer is
// of unlimited capacity as it does no allocation of its own.
type buffer struct {
	// protects concurrent access to head, tail and closed
	*sync.Cond

	head *element // the buffer that will be read first
	tail *element // the buffer that will be read last

	closed bool

	// sshx: notify, if set, is called after write, writePacket or eof,
	// outside the lock (see channel.SetReadNotify).
	notify func()
}

// An element represents a single link in a linked list.
type element struct {
	buf  []byte
	next *element
	// sshx: packet is the received packet buf was cut from; it goes back
	// to largePackets once buf has been read.
	packet []byte
}

// newBuffer returns an empty buffer that is not closed.
func newBuffer() *buffer {
	e := new(element)
	b := &buffer{
		Cond: newCond(),
		head: e,
		tail: e,
	}
	return b
}

// write makes buf available for Read to receive.
// buf must not be modified after the call to write.
func (b *buffer) write(buf []byte) {
	b.Cond.L.Lock()
	e := &element{buf: buf}
	b.tail.next = e
	b.tail = e
	b.Cond.Signal()
	notify := b.notify
	b.Cond.L.Unlock()
	if notify != nil {
		notify()
	}
}

// writePacket is write for data cut from a received packet that nothing
// else refers to: once the data has been read, packet is reused for a later
// packet (sshx).
func (b *buffer) writePacket(buf, packet []byte) {
	b.Cond.L.Lock()
	e := &element{buf: buf, packet: packet}
	b.tail.next = e
	b.tail = e
	b.Cond.Signal()
	notify := b.notify
	b.Cond.L.Unlock()
	if notify != nil {
		notify()
	}
}

// eof closes the buffer. Reads from the buffer once all
// the data has been consumed will receive io.EOF.
func (b *buffer) eof() {
	b.Cond.L.Lock()
	b.closed = true
	b.Cond.Signal()
	notify := b.notify
	b.Cond.L.Unlock()
	if notify != nil {
		notify()
	}
}

// setNotify sets the function called when data or EOF arrives (sshx).
func (b *buffer) setNotify(f func()) {
	b.Cond.L.Lock()
	b.notify = f
	b.Cond.L.Unlock()
}

// Read reads data from the internal buffer in buf.  Reads will block
// if no data is available, or until the buffer is closed.
func (b *buffer) Read(buf []byte) (n int, err error) {
	return b.read(buf, true)
}

// read is Read; without wait it returns 0, nil where Read would wait
// (sshx).
func (b *buffer) read(buf []byte, wait bool) (n int, err error) {
	b.Cond.L.Lock()
	defer b.Cond.L.Unlock()

	for len(buf) > 0 {
		// if there is data in b.head, copy it
		if len(b.head.buf) > 0 {
			r := copy(buf, b.head.buf)
			buf, b.head.buf = buf[r:], b.head.buf[r:]
			n += r
			if len(b.head.buf) == 0 && b.head.packet != nil {
				putPacketBuf(b.head.packet)
				// The empty buf still points into the packet: drop it
				// too, or the head pins a buffer the pool reuses.
				b.head.packet, b.head.buf = nil, nil
			}
			continue
		}
		// if there is a next buffer, make it the head
		if len(b.head.buf) == 0 && b.head != b.tail {
			b.head = b.head.next
			continue
		}

		// if at least one byte has been copied, return
		if n > 0 {
			break
		}

		// if nothing was read, and there is nothing outstanding
		// check to see if the buffer is closed.
		if b.closed {
			err = io.EOF
			break
		}
		// out of buffers, wait for producer
		if !wait {
			break
		}
		b.Cond.Wait()
	}
	return
}
