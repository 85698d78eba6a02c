package recording

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// PlayOptions control Play.
type PlayOptions struct {
	// Speed multiplies the pace: 2 plays twice as fast. Zero or less means 1.
	Speed float64
	// IdleLimit shortens every pause longer than it (in recording time,
	// before Speed) to it, like asciinema's --idle-time-limit. Zero means
	// no limit.
	IdleLimit time.Duration
	// At is where to start, in seconds from the recording's start (a search
	// hit's offset): output before it is written at once, without delays,
	// so the terminal shows the screen as it was there.
	At float64
}

// Play writes the output ("o" events) of an asciicast v2 recording read
// from r to w, with the recording's timing, until the end or until ctx
// ends. Other events are skipped: the player cannot resize the viewer's
// terminal. A file-transfer recording is not replayed: its operations are
// written at once, one line each (FormatFileOp), whatever the options.
func Play(ctx context.Context, r io.Reader, w io.Writer, o PlayOptions) error {
	return play(ctx, r, w, o, realClock{})
}

// clock lets tests play without waiting.
type clock interface {
	Now() time.Time
	SleepUntil(ctx context.Context, t time.Time) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func play(ctx context.Context, r io.Reader, w io.Writer, o PlayOptions, c clock) error {
	speed := o.Speed
	if speed <= 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		speed = 1
	}
	at := o.At
	if at < 0 || math.IsNaN(at) {
		at = 0
	}
	rd, err := NewReader(r)
	if err != nil {
		return fmt.Errorf("play: %w", err)
	}
	if rd.Header().IsFileTransfer() {
		return playOps(ctx, rd, w)
	}
	// Output between pauses is buffered, so that the part before At and
	// fast bursts go out in few writes; it is flushed before every pause.
	bw := bufio.NewWriterSize(w, 32<<10)
	start := c.Now()
	var elapsed time.Duration // since start, in playback time
	prev := at                // recording time of the last event played
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return flushPlay(bw)
		}
		if err != nil {
			_ = bw.Flush()
			return fmt.Errorf("play: %w", err)
		}
		if ev.Type != "o" {
			continue
		}
		if ev.Time >= at {
			pause := time.Duration(max(ev.Time-prev, 0) * float64(time.Second))
			prev = ev.Time
			if o.IdleLimit > 0 && pause > o.IdleLimit {
				pause = o.IdleLimit
			}
			elapsed += time.Duration(float64(pause) / speed)
			if deadline := start.Add(elapsed); c.Now().Before(deadline) {
				if err := flushPlay(bw); err != nil {
					return err
				}
				if err := c.SleepUntil(ctx, deadline); err != nil {
					return err
				}
			}
		}
		if _, err := bw.WriteString(ev.Data); err != nil {
			return fmt.Errorf("play: %w", err)
		}
	}
}

func flushPlay(bw *bufio.Writer) error {
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("play: %w", err)
	}
	return nil
}

// Follow writes the asciicast stream of a recording to w as it grows: the
// header, then events, from the start or (fromStart false) from now on,
// until the recording ends or ctx ends. It writes whole lines only. For a
// recording that is not active it writes what the file holds and returns.
// If the recording is deleted meanwhile it returns ErrDeleted. w is written
// from the calling goroutine; a w that buffers (an HTTP response) should
// flush on Write.
func (m *Manager) Follow(ctx context.Context, id string, fromStart bool, w io.Writer) error {
	path, err := m.path(id)
	if err != nil {
		return fmt.Errorf("follow recording: %w", err)
	}
	r := m.lookup(id)
	var wake <-chan struct{}
	if r != nil {
		// Before opening, so that no write between the two is missed.
		wake = r.waitWrite()
	}
	f, err := os.Open(path)
	if err != nil && r == nil && m.objects != nil && errors.Is(err, os.ErrNotExist) {
		return m.followRemote(ctx, id, fromStart, w)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, gerr := m.st.GetRecording(ctx, id); gerr != nil {
				return fmt.Errorf("follow recording %s: %w", id, gerr)
			}
		}
		return fmt.Errorf("follow recording %s: %w", id, err)
	}
	defer f.Close()
	fw := &follower{f: f, w: w, buf: make([]byte, 64<<10)}
	// "Now" is fixed before anything is sent: a watcher that has the
	// header sees every event written after it.
	var now int64
	if !fromStart {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("follow recording %s: %w", id, err)
		}
		if now, err = lastLineEnd(f, fi.Size()); err != nil {
			return fmt.Errorf("follow recording %s: %w", id, err)
		}
	}
	// The header always goes first.
	if err := fw.copyLines(1); err != nil {
		return fmt.Errorf("follow recording %s: %w", id, err)
	}
	fw.skipTo(now)
	for {
		if err := fw.copyLines(-1); err != nil {
			return fmt.Errorf("follow recording %s: %w", id, err)
		}
		if r == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			// Ended after its last write: copy that, and stop.
			if err := fw.copyLines(-1); err != nil {
				return fmt.Errorf("follow recording %s: %w", id, err)
			}
			if r.deleted.Load() {
				return fmt.Errorf("follow recording %s: %w", id, ErrDeleted)
			}
			return nil
		case <-wake:
			wake = r.waitWrite()
		}
	}
}

// follower copies whole lines of a growing file.
type follower struct {
	f    *os.File
	w    io.Writer
	buf  []byte
	pos  int64  // file offset read up to
	part []byte // a line read in part
}

// skipTo moves on to offset off, which starts a line, if it is ahead.
func (fw *follower) skipTo(off int64) {
	if off > fw.pos {
		fw.pos, fw.part = off, fw.part[:0]
	}
}

// copyLines copies whole lines from the file to w until the file ends or,
// if limit > 0, limit lines have been copied.
func (fw *follower) copyLines(limit int) error {
	for {
		n, err := fw.f.ReadAt(fw.buf, fw.pos)
		if n > 0 {
			fw.pos += int64(n)
			fw.part = append(fw.part, fw.buf[:n]...)
			end := 0
			for end < len(fw.part) {
				i := bytes.IndexByte(fw.part[end:], '\n')
				if i < 0 {
					break
				}
				end += i + 1
				if limit > 0 {
					if limit--; limit == 0 {
						break
					}
				}
			}
			if end > 0 {
				if _, err := fw.w.Write(fw.part[:end]); err != nil {
					return err
				}
				// Give back what was read past the limit.
				fw.pos -= int64(len(fw.part) - end)
				fw.part = fw.part[:0]
				if limit == 0 {
					return nil
				}
			}
			if len(fw.part) > MaxLineSize {
				return fmt.Errorf("line longer than %d bytes", MaxLineSize)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
