package sshgate

import (
	"maps"
	"slices"
	"time"
)

// HandledTypes returns, by where they arrive, every channel and request
// type the gateway serves (requests.go), for the authorization matrix test.
func HandledTypes() map[string][]string {
	return map[string][]string{
		"channel": slices.Sorted(maps.Keys(channelHandlers)),
		"global":  slices.Sorted(maps.Keys(globalHandlers)),
		"session": slices.Sorted(maps.Keys(sessionSteps)),
		"bridged": slices.Sorted(maps.Keys(bridgedRequests)),
	}
}

// AheadStats returns how many connections were made ahead to targets and
// how many of them a request logged in.
func (s *Server) AheadStats() (made, used int64) {
	return s.ahead.made.Load(), s.ahead.used.Load()
}

// SetUpstreamStall shortens how long a write to a target outside the data
// path may wait before its connection is closed, until the test ends.
func SetUpstreamStall(t interface{ Cleanup(func()) }, d time.Duration) {
	old := upstreamStall.Swap(int64(d))
	t.Cleanup(func() { upstreamStall.Store(old) })
}
