//go:build bench

package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuGroup is a CPU accounting cgroup holding one process and everything
// it starts. The target's sshd runs each session in processes that exit
// with it and are not always reaped by sshd itself (an orphan's CPU goes
// to init), so /proc/PID/stat's cutime misses part of what a session cost
// the target; the cgroup counts every process that ran in it, exited ones
// included.
type cpuGroup struct {
	dir   string
	v2    bool
	owner int // the process moved in
}

// newCPUGroup moves pid into a new CPU accounting cgroup (v1 cpuacct or
// v2), or says why it cannot.
func newCPUGroup(name string, pid int) (*cpuGroup, error) {
	g := &cpuGroup{owner: pid}
	switch {
	case fileExists("/sys/fs/cgroup/cgroup.controllers"):
		g.dir, g.v2 = filepath.Join("/sys/fs/cgroup", name), true
	case fileExists("/sys/fs/cgroup/cpuacct/cpuacct.usage"):
		g.dir = filepath.Join("/sys/fs/cgroup/cpuacct", name)
	default:
		return nil, fmt.Errorf("no cgroup v2 and no cgroup v1 cpuacct hierarchy under /sys/fs/cgroup")
	}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		os.Remove(g.dir)
		return nil, fmt.Errorf("move pid %d into %s: %w", pid, g.dir, err)
	}
	return g, nil
}

// seconds returns the CPU seconds used in the group so far.
func (g *cpuGroup) seconds() float64 {
	if g == nil {
		return 0
	}
	if !g.v2 {
		b, err := os.ReadFile(filepath.Join(g.dir, "cpuacct.usage"))
		if err != nil {
			return 0
		}
		ns, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		return ns / 1e9
	}
	f, err := os.Open(filepath.Join(g.dir, "cpu.stat"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			us, _ := strconv.ParseFloat(v, 64)
			return us / 1e6
		}
	}
	return 0
}

// settle waits (at most 5 s) until only the process moved in is left in
// the group, so that a session that just ended has stopped using CPU
// before the group is read.
func (g *cpuGroup) settle() {
	if g == nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
		if err != nil || len(bytes.Fields(b)) <= 1 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remove moves what is left in the group back to the root group and
// removes it.
func (g *cpuGroup) remove() {
	if g == nil {
		return
	}
	if b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs")); err == nil {
		root := filepath.Join(filepath.Dir(g.dir), "cgroup.procs")
		for _, p := range bytes.Fields(b) {
			_ = os.WriteFile(root, p, 0o644)
		}
	}
	_ = os.Remove(g.dir)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
