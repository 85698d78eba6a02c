package recording

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goldenSteps drives a recording through varied output: seq-like and
// prose text, every ASCII byte, quotes and backslashes, valid UTF-8 of
// every length split across events, invalid UTF-8, NUL and other C0
// controls (a binary burst), events larger than maxEventData, window
// changes, typed input, and a character left incomplete at the end.
// flush, if not nil, is called after every write.
func goldenSteps(r *Recorder, clk *fakeClock, flush func()) {
	rng := rand.New(rand.NewPCG(13, 2))
	step := func(p []byte) {
		r.Output(p)
		clk.Advance(time.Duration(rng.IntN(5000)) * time.Microsecond)
		if flush != nil {
			flush()
		}
	}
	step(seqText(100 << 10))
	step(proseText(70 << 10))
	var all []byte
	for b := range 0x80 {
		all = append(all, byte(b))
	}
	step(all)
	step([]byte(`"quoted" \back\slash\ "\"\\`))
	u := []byte("Grüße, 世界! ✓ 😀 é")
	for i := range u { // every split point of multi-byte characters
		step(u[:i])
		step(u[i:])
	}
	step([]byte("bad \xff\xfe \xc3 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xc0\xaf end\r\n"))
	r.Input([]byte("ls -l\r"))
	r.Resize(132, 43)
	// One huge write: several events of maxEventData, plain and escaped.
	huge := bytes.Repeat([]byte("0123456789abcdef\"\\\t\x1b[1m€"), 3*maxEventData/24)
	step(huge)
	// Random text with a sprinkling of everything.
	rnd := make([]byte, 300<<10)
	for i := range rnd {
		switch k := rng.IntN(100); {
		case k < 80:
			rnd[i] = byte(' ' + rng.IntN(95))
		case k < 90:
			rnd[i] = "\r\n\t\x1b\x07\b"[rng.IntN(6)]
		default:
			rnd[i] = byte(0x80 + rng.IntN(0x80))
		}
	}
	for len(rnd) > 0 {
		n := min(len(rnd), 1+rng.IntN(40<<10))
		step(rnd[:n])
		rnd = rnd[n:]
	}
	// A binary burst (NUL bytes), then text again after a pause.
	bin := make([]byte, 3<<20)
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	for i := 0; i < len(bin); i += 32 << 10 {
		step(bin[i : i+32<<10])
	}
	clk.Advance(2 * time.Second)
	step([]byte(strings.Repeat("after the burst\r\n", 100)))
	step([]byte("ends inside a character: \xe2\x82"))
}

// TestRecordingGolden checks that the recording file of goldenSteps, byte
// for byte, and the SHA-256 Close returns, are what the encoder wrote
// before the hot path was reworked (issue 13): a recording's bytes and
// digest must never change with an optimization. The digests were taken
// from the encoder as of commit f5fdb20; three flush patterns give the
// same file.
func TestRecordingGolden(t *testing.T) {
	const (
		wantSize = 6009465
		wantSum  = "acfa276e61a81d53881d46a722561e69876ceeae031fea9b83c7699295fe164f"
	)
	// Flush after every so many writes; 0: only at Close.
	for _, every := range []int{0, 1, 7} {
		m, _, clk := newTestManager(t)
		meta := testMeta("golden")
		meta.RecordInput = true
		r, err := m.Start(context.Background(), meta)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		var flush func()
		if every > 0 {
			flush = func() {
				if n++; n%every == 0 {
					flushSync(t, r)
				}
			}
		}
		goldenSteps(r, clk, flush)
		size, sum, err := r.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(m.Dir(), "golden.cast"))
		if err != nil {
			t.Fatal(err)
		}
		fileSum := sha256.Sum256(raw)
		if size != wantSize || sum != wantSum || hex.EncodeToString(fileSum[:]) != wantSum || int64(len(raw)) != wantSize {
			t.Errorf("flush every %d steps: Close = %d %s, file %d bytes %x; want %d %s",
				every, size, sum, len(raw), fileSum, wantSize, wantSum)
		}
	}
}
