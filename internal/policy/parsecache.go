package policy

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/portcullis/portcullis/internal/shellcmd"
)

// parseCache remembers the parsed form of recent commands, so that a
// decision on a command seen before allocates nothing. Measured with
// BenchmarkDecide at 10,000 policies: parsing each time costs one small
// allocation per decision, and the garbage collector's work over the
// engine's large heap then lands on single decisions, raising p99 from
// ~6 us to 13-23 us; p50 barely moves.
//
// It is direct-mapped and lock-free, as Decide takes no locks: each slot
// holds one (command, result) pair, replaced on a miss; a result is never
// modified after it is stored. Bounded: parseSlots entries of at most
// parseMaxLen bytes of command each.
type parseCache struct {
	seed  maphash.Seed
	slots [parseSlots]atomic.Pointer[parsedCommand]
}

const (
	parseSlots  = 1024
	parseMaxLen = 512
)

type parsedCommand struct {
	command string
	res     shellcmd.Result
}

func newParseCache() *parseCache { return &parseCache{seed: maphash.MakeSeed()} }

// parse returns the parsed command, from the cache when it holds it.
func (c *parseCache) parse(command string) *shellcmd.Result {
	if c == nil || len(command) > parseMaxLen {
		res := shellcmd.Parse(command)
		return &res
	}
	slot := &c.slots[maphash.String(c.seed, command)%parseSlots]
	if p := slot.Load(); p != nil && p.command == command {
		return &p.res
	}
	p := &parsedCommand{command: command, res: shellcmd.Parse(command)}
	slot.Store(p)
	return &p.res
}
