package server

import "syscall"

// umask sets the process umask and returns the previous one. The gateway
// runs on Linux only (it needs unix sockets and Debian's sshd in tests).
func umask(mask int) int { return syscall.Umask(mask) }
