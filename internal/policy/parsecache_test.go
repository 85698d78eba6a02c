package policy

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis/portcullis/internal/shellcmd"
)

// TestParseCache: a cached parse is the parse, whatever else shares its
// slot, under concurrent use (run with -race), and long commands bypass it.
func TestParseCache(t *testing.T) {
	c := newParseCache()
	cmds := []string{"uptime", "rm -rf /", "ls; id", "sudo ls /root", "bash -c 'rm x'", "eval x", strings.Repeat("a", parseMaxLen+1)}
	// More distinct commands than slots: slots are replaced.
	for i := range 3 * parseSlots {
		cmds = append(cmds, fmt.Sprintf("echo %d && ls /tmp/%d", i, i))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 2 {
				for i := range cmds {
					cmd := cmds[(i+g*97+round*13)%len(cmds)]
					if got, want := c.parse(cmd), shellcmd.Parse(cmd); !reflect.DeepEqual(*got, want) {
						t.Errorf("parse(%.40q) = %+v, want %+v", cmd, *got, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	var nilCache *parseCache
	if got := nilCache.parse("uptime"); got.Unjudgeable != "" || len(got.Commands) != 1 {
		t.Errorf("nil cache parse: %+v", *got)
	}
}
