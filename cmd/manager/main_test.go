package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/stratops/stratops/internal/redisserver"
)

// TestMetrics_ServesTheGivenCertificateAndItsRenewal: the manager binary,
// run against a real API server with --metrics-cert-path, serves its
// metrics with that certificate (a client that trusts only its CAs
// connects) and, once the files are replaced as cert-manager renews them,
// with the new one, without a restart. Without a token /metrics is
// refused.
func TestMetrics_ServesTheGivenCertificateAndItsRenewal(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run with `make test`, which builds kube-apiserver and etcd into bin/")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	_, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	dir := t.TempDir()
	admin, err := env.AddUser(envtest.User{Name: "manager-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}

	// Two certificates for 127.0.0.1, from two CAs: the one served at
	// start and its renewal.
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	var issued []*redisserver.PKI
	for range 2 {
		p, err := redisserver.NewPKI(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(p.CAPEM)
		issued = append(issued, p)
	}
	first := install(t, certs, issued[0])

	bin := filepath.Join(dir, "manager")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}
	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+probeAddr,
		"--metrics-cert-path="+certs, "--revision-key-namespace=default")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "STRATOPS_EVENTLOGGER_IMAGE=stratops:test")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()

	served := func() ([]byte, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", metricsAddr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw, nil
	}
	waitServed := func(want []byte) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, err := served()
			if err == nil && bytes.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the metrics endpoint does not serve the certificate expected (%v); the manager said:\n%s", err, logs.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitServed(first)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get("https://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %s, want 401", resp.Status)
	}

	waitServed(install(t, certs, issued[1]))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// install puts a PKI's server certificate and key in dir as tls.crt and
// tls.key, each replaced at once as a mounted Secret's files are, and
// returns the certificate (DER).
func install(t *testing.T, dir string, p *redisserver.PKI) []byte {
	t.Helper()
	for name, src := range map[string]string{"tls.key": p.ServerKey, "tls.crt": p.ServerCert} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p.ServerCert)
	block, _ := pem.Decode(b)
	return block.Bytes
}
