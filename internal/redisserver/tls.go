package redisserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a certificate authority made for a test, with a server
// certificate (for 127.0.0.1 and "localhost", plus the names given) and a
// client certificate, all as PEM files in Dir.
type PKI struct {
	Dir string
	// CA, ServerCert, ServerKey, ClientCert, ClientKey are file paths.
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// CAPEM, ClientCertPEM and ClientKeyPEM are the same, read.
	CAPEM, ClientCertPEM, ClientKeyPEM []byte
}

// NewPKI makes a CA and the server's and a client's certificates. A
// server name that is an IP address goes in the certificate as one.
func NewPKI(dir string, serverNames ...string) (*PKI, error) {
	p := &PKI{Dir: dir}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redisserver CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.CA = filepath.Join(dir, "ca.crt")
	p.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(p.CA, p.CAPEM, 0o600); err != nil {
		return nil, err
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: dns, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
	}
	dns, ips := []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}
	for _, n := range serverNames {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	sc, sk, err := issue("redis", 2, x509.ExtKeyUsageServerAuth, dns, ips)
	if err != nil {
		return nil, err
	}
	p.ClientCertPEM, p.ClientKeyPEM, err = issue("stratops", 3, x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return nil, err
	}
	p.ServerCert, p.ServerKey = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	p.ClientCert, p.ClientKey = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	for path, b := range map[string][]byte{p.ServerCert: sc, p.ServerKey: sk, p.ClientCert: p.ClientCertPEM, p.ClientKey: p.ClientKeyPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ServerArgs are redis-server's arguments for TLS only (no plain port) with
// this PKI; with clientAuth, clients must present a certificate the CA
// signed.
func (p *PKI) ServerArgs(clientAuth bool) []string {
	auth := "no"
	if clientAuth {
		auth = "yes"
	}
	return []string{"--tls-cert-file", p.ServerCert, "--tls-key-file", p.ServerKey, "--tls-ca-cert-file", p.CA, "--tls-auth-clients", auth}
}

// ClientTLS is a client configuration trusting the CA, with the client
// certificate when withCert.
func (p *PKI) ClientTLS(withCert bool) (*tls.Config, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.X509KeyPair(p.ClientCertPEM, p.ClientKeyPEM)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
