package resource

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// TunnelRules limit where a policy's tunnel action reaches (ssh -L, -W,
// -D: the target's sshd opens the connection). Without them a tunnel
// reaches only the target host itself: see Endpoint.
type TunnelRules struct {
	// To lists destinations as HOST:PORT, where HOST is a host name
	// (db.internal), an IP address (127.0.0.1, [::1]) or a CIDR
	// (10.0.0.0/8, [fd00::/8]), and PORT a number or * for any.
	To []string `yaml:"to,omitempty" json:"to,omitempty"`
}

// validateTunnels checks tunnels.to: only with the tunnel action, at least
// one entry, each one parsed.
func (p *Policy) validateTunnels() error {
	if p.Tunnels == nil {
		return nil
	}
	if !slices.Contains(p.Actions, ActionTunnel) {
		return fieldErr("tunnels", "is used only with the tunnel action")
	}
	if len(p.Tunnels.To) == 0 {
		return fieldErr("tunnels.to", "lists no destination (HOST:PORT, e.g. 127.0.0.1:5432, db.internal:5432, 10.0.0.0/8:443); leave tunnels out to allow only the target host itself")
	}
	seen := map[Endpoint]bool{}
	for i, to := range p.Tunnels.To {
		e, err := ParseTunnelRule(to)
		if err != nil {
			return fieldErr(fmt.Sprintf("tunnels.to[%d]", i), "%v", err)
		}
		if seen[e] {
			return fieldErr(fmt.Sprintf("tunnels.to[%d]", i), "%q is listed twice", to)
		}
		seen[e] = true
	}
	return nil
}

// Endpoint is a parsed tunnel destination: a rule of TunnelRules.To, or
// the destination a client asks for. Exactly one of Name and Prefix is
// set. Host names are compared as written (lower case, without a final
// dot), never resolved: the target's sshd resolves the name it is given,
// and what the gateway resolved might not be what the target reaches. A
// CIDR therefore matches only IP addresses written as such.
type Endpoint struct {
	Name   string       // a host name, lower case, no final dot
	Prefix netip.Prefix // an IP address (/32 or /128) or a CIDR, unmapped
	Port   uint16       // 0: any port (rules only)
}

// String writes e back in the form ParseTunnelRule reads.
func (e Endpoint) String() string {
	port := "*"
	if e.Port != 0 {
		port = strconv.Itoa(int(e.Port))
	}
	host := e.Name
	if e.Prefix.IsValid() {
		host = e.Prefix.String()
		if e.Prefix.IsSingleIP() {
			host = e.Prefix.Addr().String()
		}
	}
	return net.JoinHostPort(host, port)
}

// Matches reports whether rule e allows destination d.
func (e Endpoint) Matches(d Endpoint) bool {
	if e.Port != 0 && e.Port != d.Port {
		return false
	}
	if e.Prefix.IsValid() {
		return d.Prefix.IsValid() && d.Prefix.IsSingleIP() && e.Prefix.Contains(d.Prefix.Addr())
	}
	return d.Name != "" && d.Name == e.Name
}

// ParseTunnelRule reads one entry of TunnelRules.To.
func ParseTunnelRule(s string) (Endpoint, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%q is not HOST:PORT (an IPv6 address goes in brackets: [::1]:22)", s)
	}
	var e Endpoint
	if port != "*" {
		p, err := parsePort(port)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%q: %w", s, err)
		}
		e.Port = p
	}
	if strings.Contains(host, "/") {
		pfx, err := netip.ParsePrefix(host)
		if err != nil || pfx.Addr().Zone() != "" {
			return Endpoint{}, fmt.Errorf("%q: %q is not a CIDR like 10.0.0.0/8", s, host)
		}
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		e.Prefix = pfx.Masked()
		return e, nil
	}
	e, err = parseHost(host, e.Port)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%q: %w", s, err)
	}
	return e, nil
}

// ParseTunnelDestination reads the destination of a direct-tcpip request
// (host as the client sent it, port). It refuses what the target's
// resolver could read in more than one way: IPv4 in other than dotted
// decimal (0x7f.1, 127.1, 2130706433, 0177.0.0.1), zones, names that are
// not host names, and ports 0 or past 65535.
func ParseTunnelDestination(host string, port uint32) (Endpoint, error) {
	if port == 0 || port > 65535 {
		return Endpoint{}, fmt.Errorf("port %d is not from 1 to 65535", port)
	}
	if h, ok := strings.CutPrefix(host, "["); ok {
		if h, ok = strings.CutSuffix(h, "]"); !ok {
			return Endpoint{}, fmt.Errorf("%q is not a host", host)
		}
		if _, err := netip.ParseAddr(h); err != nil {
			return Endpoint{}, fmt.Errorf("%q is not an IPv6 address in brackets", host)
		}
		host = h
	}
	return parseHost(host, uint16(port))
}

// parseHost reads an IP address or a host name.
func parseHost(host string, port uint16) (Endpoint, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Endpoint{}, fmt.Errorf("%q: an address with a zone is not accepted", host)
		}
		a = a.Unmap()
		return Endpoint{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: port}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if err := checkHostName(name); err != nil {
		return Endpoint{}, fmt.Errorf("%q: %w", host, err)
	}
	return Endpoint{Name: name, Port: port}, nil
}

// checkHostName accepts a DNS host name (lower case): labels of letters,
// digits and '-', not starting or ending with '-'. A name whose last
// label is numeric is refused: no top-level domain is, and the C library
// reads 127.1 or 0x7f.1 as an IPv4 address.
func checkHostName(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("is not a host name")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("is not a host name")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return errors.New("is not a host name")
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.HasPrefix(last, "0x") || strings.Trim(last, "0123456789") == "" {
		return errors.New("is an IPv4 address in a non-standard form (write it as dotted decimal, like 127.0.0.1)")
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535 (or * for any)", s)
	}
	return uint16(n), nil
}
