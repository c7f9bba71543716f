package redisprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"
)

// AddressPolicy is the operator's allow-list of Redis addresses
// (--allowed-redis-addresses): host globs ("*.redis.svc.cluster.local",
// "redis-?.example.com") and CIDRs or single IPs ("10.20.0.0/16",
// "192.0.2.7"). A host name is allowed when a glob matches it, or when
// every address it resolves to lies in a CIDR; an IP when a CIDR holds it
// (or a glob matches it as written). The nil policy allows any address.
//
// The operator checks a Strategy's addresses before it connects, and its
// dialer checks every address it dials, so servers that Sentinel or
// Cluster discovery returns are held to the same list; a name is dialled
// at the address that was checked.
type AddressPolicy struct {
	entries  []string
	globs    []string
	prefixes []netip.Prefix
	// Resolver resolves host names. default: net.DefaultResolver.
	Resolver *net.Resolver
}

// ParseAddressPolicy reads the allow-list's entries; none means any
// address (a nil policy).
func ParseAddressPolicy(entries []string) (*AddressPolicy, error) {
	p := &AddressPolicy{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		p.entries = append(p.entries, e)
		if strings.Contains(e, "/") {
			pre, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allowed Redis address %q: not a CIDR: %w", e, err)
			}
			p.prefixes = append(p.prefixes, pre.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(e); err == nil {
			p.prefixes = append(p.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		if _, err := path.Match(e, ""); err != nil {
			return nil, fmt.Errorf("allowed Redis address %q: not a host glob: %w", e, err)
		}
		p.globs = append(p.globs, strings.ToLower(e))
	}
	if len(p.entries) == 0 {
		return nil, nil
	}
	return p, nil
}

// String is the list as given.
func (p *AddressPolicy) String() string {
	if p == nil {
		return "any"
	}
	return strings.Join(p.entries, ",")
}

// AddressNotAllowedError is an address outside the allow-list.
type AddressNotAllowedError struct {
	// Addr is the address asked for; Resolved, when set, the address it
	// resolved to that no CIDR holds.
	Addr, Resolved string
	Policy         string
}

func (e *AddressNotAllowedError) Error() string {
	what := e.Addr
	if e.Resolved != "" && e.Resolved != e.Addr {
		what = fmt.Sprintf("%s (resolved to %s)", e.Addr, e.Resolved)
	}
	return fmt.Sprintf("Redis address %s is not allowed: the operator connects only to %s (--allowed-redis-addresses)", what, e.Policy)
}

// IsAddressNotAllowed reports whether err is, or wraps, an
// AddressNotAllowedError.
func IsAddressNotAllowed(err error) bool {
	var e *AddressNotAllowedError
	return errors.As(err, &e)
}

// Check checks a host:port before any connection. It returns the
// addresses to dial (the host itself when a glob allowed it by name), an
// AddressNotAllowedError, or the resolver's error.
func (p *AddressPolicy) Check(ctx context.Context, addr string) ([]string, error) {
	if p == nil {
		return []string{addr}, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("redis address %q: %w", addr, err)
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, g := range p.globs {
		if ok, _ := path.Match(g, lower); ok {
			return []string{addr}, nil
		}
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		r := p.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if ips, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, err
		}
	}
	var dial []string
	for _, ip := range ips {
		ip = ip.Unmap()
		if !p.holds(ip) {
			return nil, &AddressNotAllowedError{Addr: addr, Resolved: ip.String(), Policy: p.String()}
		}
		dial = append(dial, net.JoinHostPort(ip.String(), port))
	}
	return dial, nil
}

func (p *AddressPolicy) holds(ip netip.Addr) bool {
	for _, pre := range p.prefixes {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// Dialer is a go-redis dialer that dials only allowed addresses, each in
// at most timeout. TLS, when on, runs over what it returns
// (messaging.RedisConfig.Dialer).
func (p *AddressPolicy) Dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		targets, err := p.Check(ctx, addr)
		if err != nil {
			return nil, err
		}
		d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
		var errs []error
		for _, t := range targets {
			c, err := d.DialContext(ctx, network, t)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
}
