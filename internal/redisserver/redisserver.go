// Package redisserver runs real redis-server processes on free ports, each
// with a temporary directory: make run's Redis, and the tests' servers,
// Sentinel groups, Clusters and TLS. Servers can be stopped and restarted
// on the same port to test outages, and a replica can be started to test
// read-only servers. Tests never use a Redis they did not start, unless
// REDIS_ADDR points at one (see Shared). It imports no testing package, so
// a product binary (make run's) may link it; package redistest holds the
// helpers that take a *testing.T.
package redisserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is one redis-server process this package started.
type Server struct {
	// Addr is host:port.
	Addr string
	port int
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
	// external is true for a server given by REDIS_ADDR: never stopped.
	external bool
	// tls, for a TLS-only server: how ping reaches it.
	tls *tls.Config
}

// Options for a new server.
type Options struct {
	// Args are extra redis-server arguments, e.g. "--requirepass", "pw".
	Args []string
	// ReplicaOf makes the server a replica of that server.
	ReplicaOf *Server
	// Persist keeps every acknowledged write across Stop/Kill and Restart
	// (appendonly, fsync always). default: false, nothing is persisted.
	Persist bool
	// SentinelOf makes the server a Sentinel that monitors that server as
	// master set SentinelMaster (quorum SentinelQuorum, default 1; the
	// master is down after SentinelDownAfter, default Sentinel's 30s).
	SentinelOf        *Server
	SentinelQuorum    int
	SentinelDownAfter time.Duration
	// Host is the address the server binds to. default: 127.0.0.1. The
	// end-to-end tests bind it to the cluster bridge's gateway, where pods
	// reach it as a Redis outside the cluster.
	Host string
	// TLS serves TLS only (no plain port) with the PKI's server
	// certificate; TLSClientAuth requires a client certificate too.
	TLS           *PKI
	TLSClientAuth bool
	// Cluster runs it as a cluster node, its cluster bus on a free port of
	// its own: the default, its port + 10000, may be taken or past 65535.
	Cluster bool
}

// SentinelMaster is the master set a Sentinel started with SentinelOf
// monitors.
const SentinelMaster = "stratops"

// Start starts a redis-server on a free port (loopback unless opts.Host) and waits until it
// answers PING. A port taken between its choice and the server's bind (by
// another test's process) is chosen again.
func Start(opts Options) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redisserver: redis-server not found on PATH; run `make redis` (installs it with apt-get as root)")
	}
	for attempt := 1; ; attempt++ {
		s, err := startOnce(opts)
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "Address already in use") {
			return s, err
		}
	}
}

func startOnce(opts Options) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redisserver-")
	if err != nil {
		return nil, err
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", host,
		"--dir", dir, "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
		"--protected-mode", "no",
	}
	switch {
	case opts.SentinelOf != nil:
		conf := filepath.Join(dir, "sentinel.conf")
		mhost, mport, _ := net.SplitHostPort(opts.SentinelOf.Addr)
		sconf := fmt.Sprintf("sentinel monitor %s %s %s %d\n", SentinelMaster, mhost, mport, max(opts.SentinelQuorum, 1))
		if opts.SentinelDownAfter > 0 {
			sconf += fmt.Sprintf("sentinel down-after-milliseconds %s %d\nsentinel failover-timeout %s %d\n",
				SentinelMaster, opts.SentinelDownAfter.Milliseconds(), SentinelMaster, 3*opts.SentinelDownAfter.Milliseconds())
		}
		if err := os.WriteFile(conf, []byte(sconf), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		args = []string{conf, "--sentinel", "--port", strconv.Itoa(port), "--bind", host, "--dir", dir,
			"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"), "--protected-mode", "no"}
	case opts.Persist:
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	default:
		args = append(args, "--appendonly", "no")
	}
	if opts.ReplicaOf != nil {
		host, p, _ := net.SplitHostPort(opts.ReplicaOf.Addr)
		args = append(args, "--replicaof", host, p)
	}
	var tlsCfg *tls.Config
	if opts.TLS != nil {
		args[1] = "0" // "--port" "0": no plain port
		args = append(args, "--tls-port", strconv.Itoa(port))
		args = append(args, opts.TLS.ServerArgs(opts.TLSClientAuth)...)
		if tlsCfg, err = opts.TLS.ClientTLS(true); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	if opts.Cluster {
		bus, err := freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus))
	}
	args = append(args, opts.Args...)
	s := &Server{Addr: net.JoinHostPort(host, strconv.Itoa(port)), port: port, dir: dir, args: args, tls: tlsCfg}
	if err := s.start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Shared returns the server named by REDIS_ADDR (never stopped by Close),
// or starts a new one.
func Shared() (*Server, error) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return &Server{Addr: addr, external: true}, nil
	}
	return Start(Options{})
}

func (s *Server) start() error {
	cmd := exec.Command("redis-server", s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisserver: starting redis-server: %w", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.ping(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_, _ = cmd.Process.Wait()
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return fmt.Errorf("redisserver: redis-server on %s did not answer PING within 10s; its log:\n%s", s.Addr, log)
}

// ping sends an inline PING and expects +PONG (or an auth error, which
// also shows that the server is up).
func (s *Server) ping() error {
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 200 * time.Millisecond}, "tcp", s.Addr, s.tls)
	} else {
		c, err = net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(line, "-LOADING"):
		return errors.New(strings.TrimSpace(line))
	case strings.HasPrefix(line, "+PONG"), strings.HasPrefix(line, "-"):
		// An error such as NOAUTH also shows that the server is up.
		return nil
	}
	return fmt.Errorf("unexpected reply %q", line)
}

// Stop stops the server (SIGTERM, as an orderly shutdown would) and waits
// for it to exit. The port stays free for Restart.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Kill kills the server (SIGKILL) and waits for it to exit.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) error {
	if s.external {
		return errors.New("redisserver: a server given by REDIS_ADDR is not stopped by tests")
	}
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return nil
}

// Restart starts the server again on the same port and directory.
func (s *Server) Restart() error {
	if s.external {
		return errors.New("redisserver: a server given by REDIS_ADDR is not restarted by tests")
	}
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start()
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil || s.external
}

// Close kills the server and removes its directory.
func (s *Server) Close() {
	if s.external {
		return
	}
	_ = s.Kill()
	_ = os.RemoveAll(s.dir)
}

// WaitDown waits until nothing answers on the server's port.
func (s *Server) WaitDown(ctx context.Context) error {
	for {
		if s.ping() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisserver: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// BlackHole is a listener that accepts connections and never answers: a
// Redis, or a TLS endpoint, that hangs every client until its own
// deadline.
type BlackHole struct {
	// Addr is host:port.
	Addr string
	l    net.Listener

	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

// StartBlackHole listens on a free loopback port.
func StartBlackHole() (*BlackHole, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redisserver: black hole: %w", err)
	}
	b := &BlackHole{Addr: l.Addr().String(), l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.accepted++
			b.mu.Unlock()
		}
	}()
	return b, nil
}

// Accepted is how many connections it accepted.
func (b *BlackHole) Accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

// Close stops listening and drops every connection.
func (b *BlackHole) Close() {
	_ = b.l.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
}
