package backup

import "syscall"

// umask sets the process umask and returns the old one, so that the copy
// SQLite creates is private from its creation.
func umask(m int) int { return syscall.Umask(m) }
