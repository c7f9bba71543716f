package cluster

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ClusterDomain is the cluster's DNS domain.
const ClusterDomain = "cluster.local"

// upDNS serves the cluster's DNS on the bridge gateway, port 53 (UDP), in
// this process: the part of a cluster DNS that pods use to reach a Service
// by name. <service>.<namespace>.svc.cluster.local answers with the
// Service's ClusterIP, read from the API server; every other name is
// NXDOMAIN, so nothing resolves to outside the machine. The kubelet points
// pods at it (clusterDNS), with the usual search path.
func (c *Cluster) upDNS(context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp4", net.JoinHostPort(GatewayIP, "53"))
	if err != nil {
		return err
	}
	c.dns = pc
	lookup := func(name string) (net.IP, bool) {
		svc, ns, ok := serviceName(name)
		if !ok {
			return nil, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := cs.CoreV1().Services(ns).Get(ctx, svc, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err != nil {
			return nil, false
		}
		return net.ParseIP(s.Spec.ClusterIP).To4(), true
	}
	go serveDNS(pc, lookup)
	return nil
}

// serviceName splits <service>.<namespace>.svc.cluster.local.
func serviceName(name string) (svc, ns string, ok bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	rest, found := strings.CutSuffix(name, ".svc."+ClusterDomain)
	if !found {
		return "", "", false
	}
	svc, ns, found = strings.Cut(rest, ".")
	if !found || svc == "" || ns == "" || strings.Contains(ns, ".") {
		return "", "", false
	}
	return svc, ns, true
}

func serveDNS(pc net.PacketConn, lookup func(string) (net.IP, bool)) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if resp := dnsAnswer(buf[:n], lookup); resp != nil {
			_, _ = pc.WriteTo(resp, from)
		}
	}
}

// dnsAnswer answers one query: the A record of a Service with a ClusterIP;
// no answer (but success) for its other types; NXDOMAIN for the rest.
func dnsAnswer(req []byte, lookup func(string) (net.IP, bool)) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	ip, exists := lookup(q.Name.String())
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !exists {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	if exists && ip != nil && q.Type == dnsmessage.TypeA {
		var a [4]byte
		copy(a[:], ip)
		if b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: a}) != nil {
			return nil
		}
	}
	resp, err := b.Finish()
	if err != nil {
		return nil
	}
	return resp
}
