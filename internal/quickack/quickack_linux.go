package quickack

import (
	"net"
	"syscall"
)

// quickAcker returns a function that sets TCP_QUICKACK on nc's socket: on
// Linux that sends a delayed acknowledgement now and leaves the
// "interactive" mode in which acknowledgements wait. The kernel may enter
// that mode again, hence once per read.
func quickAcker(nc net.Conn) func() {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	set := func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	}
	return func() { _ = raw.Control(set) }
}
