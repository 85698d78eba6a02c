package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataLock is the exclusive lock a gateway holds on its data directory for
// as long as it runs (DATA/lock). Two gateways on one data directory would
// each take the other's live recordings for interrupted ones, race on the
// spool and the checkpoint file, and split the admin socket: the second
// must change nothing and leave.
type dataLock struct{ f *os.File }

// lockDataDir takes the lock on dir, or says which process holds it. It
// writes this process's id into the lock file, for the next one's message.
// The lock is flock(2): the kernel drops it when the process dies, however
// it dies, so there is never a stale lock to clear by hand.
func lockDataDir(dir string) (*dataLock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "unknown pid"
			if b, err := os.ReadFile(path); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = "pid " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("data directory %s is in use by another gateway (%s)", dir, holder)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataLock{f: f}, nil
}

// release drops the lock; the file stays, holding the last pid.
func (l *dataLock) release() {
	if l != nil && l.f != nil {
		_ = l.f.Close() // closing the only descriptor releases the flock
		l.f = nil
	}
}

// checkNotWritableByOthers refuses a path (the data directory, a key file)
// that a group or every local user may write: whoever can write there can
// replace a key, the database or the audit trail, and so owns the gateway.
// A path that does not exist yet is fine (it is created private). The
// error names the chmod that fixes it.
func checkNotWritableByOthers(what, path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	mode := fi.Mode().Perm()
	if mode&0o022 == 0 {
		return nil
	}
	fix := "chmod go-w " + shellQuote(path)
	return fmt.Errorf("%s %s is writable by its group or by every user (mode %04o); refusing to start: run `%s`",
		what, path, mode, fix)
}

// checkKeyFiles checks every key file the config names (by what it is).
// The audit key has no file: it is sealed in the database.
func checkKeyFiles(keys map[string]string) error {
	for _, what := range []string{"master key", "host key", "user CA key", "TLS key"} {
		if p := keys[what]; p != "" {
			if err := checkNotWritableByOthers(what, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// shellQuote quotes p for a POSIX shell when it needs it, so that the
// printed command can be pasted as it is.
func shellQuote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
