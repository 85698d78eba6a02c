package proxyproto

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"

	pp "github.com/pires/go-proxyproto"
)

// FuzzParseHeader feeds arbitrary bytes to the header parser: it must not
// panic, a success must yield a TCP address, and the bytes after the header
// must be left unread for the SSH or TLS layer.
func FuzzParseHeader(f *testing.F) {
	seeds := [][]byte{
		[]byte("PROXY TCP4 203.0.113.9 10.0.0.1 40000 2222\r\nSSH-2.0-x\r\n"),
		[]byte("PROXY TCP6 2001:db8::9 2001:db8::1 40000 2222\r\n"),
		[]byte("PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n"),
		[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"),
		[]byte("PROXY \r\n"),
		[]byte("SSH-2.0-OpenSSH_9.2\r\n"),
		[]byte("\x16\x03\x01\x00\x05hello"),
		{},
	}
	for _, h := range []*pp.Header{
		pp.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 2}),
		pp.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 2}),
		pp.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.ParseIP("203.0.113.9"), Port: 1}, &net.UDPAddr{IP: net.ParseIP("10.0.0.1"), Port: 2}),
		{Version: 2, Command: pp.LOCAL, TransportProtocol: pp.UNSPEC},
	} {
		b, err := h.Format()
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b, append(b, "after"...), b[:len(b)-1])
	}
	for _, s := range seeds {
		f.Add(s)
	}
	peer := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), headerBufferSize)
		addr, err := parseHeader(r, peer)
		if err != nil {
			return
		}
		ta, ok := addr.(*net.TCPAddr)
		if !ok || ta.IP == nil {
			t.Fatalf("parsed %q to %T %v, want a TCP address", data, addr, addr)
		}
		_ = ta.String()
		rest, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(rest) >= len(data) || !bytes.HasSuffix(data, rest) {
			t.Fatalf("after the header of %q, %q is left: not a proper suffix", data, rest)
		}
	})
}
