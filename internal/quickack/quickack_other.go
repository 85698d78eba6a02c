//go:build !linux

package quickack

import "net"

// quickAcker is nil where TCP_QUICKACK does not exist: connections are
// left as they are.
func quickAcker(net.Conn) func() { return nil }
