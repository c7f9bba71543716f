package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
)

// TestDNS_ServicesResolveAndNothingElse: the cluster's DNS server, asked
// through Go's own resolver as a pod would ask it, answers a Service's
// name with its ClusterIP and nothing for every other name.
func TestDNS_ServicesResolveAndNothingElse(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	services := map[[2]string]string{{"redis", "default"}: "10.96.0.7", {"headless", "default"}: "None"}
	go serveDNS(pc, func(name string) (net.IP, bool) {
		svc, ns, ok := serviceName(name)
		if !ok {
			return nil, false
		}
		ip, ok := services[[2]string{svc, ns}]
		return net.ParseIP(ip).To4(), ok
	})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	ctx := context.Background()
	addrs, err := r.LookupHost(ctx, "redis.default.svc.cluster.local")
	if err != nil || !slices.Equal(addrs, []string{"10.96.0.7"}) {
		t.Fatalf("redis.default.svc.cluster.local = %v, %v; want [10.96.0.7]", addrs, err)
	}
	for _, name := range []string{"redis.other.svc.cluster.local", "headless.default.svc.cluster.local", "example.com", "redis.default.svc"} {
		addrs, err := r.LookupHost(ctx, name)
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s = %v, %v; want not found", name, addrs, err)
		}
	}
}
