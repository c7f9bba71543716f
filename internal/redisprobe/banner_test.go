package redisprobe

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stratops/stratops/pkg/messaging"
)

// TestProbe_AServerThatIsNotRedisIsNamedNotQuoted: a Strategy's author
// picks the address, so whatever answers there must not have its words
// repeated in status: an HTTP server and a server that sends a banner
// first each fail the round as NotRedis (or a class of our own words),
// and no probe message holds a byte they sent.
func TestProbe_AServerThatIsNotRedisIsNamedNotQuoted(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Server", "secret-banner/1.0")
		_, _ = w.Write([]byte("internal admin panel secret-banner"))
	}))
	defer web.Close()
	banner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer banner.Close()
	go func() {
		for {
			c, err := banner.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte("SSH-2.0-secret-banner_9.6\r\n"))
				_, _ = bufio.NewReader(c).ReadString('\n')
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				_, _ = c.Write([]byte("-ERR secret-banner protocol mismatch\r\n"))
			}()
		}
	}()
	for name, addr := range map[string]string{"http": strings.TrimPrefix(web.URL, "http://"), "banner": banner.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			rep := roundOn(t, messaging.RedisConfig{Addrs: []string{addr}, DialTimeout: time.Second}, false)
			f, failed := rep.Failed()
			if !failed {
				t.Fatalf("the round passed against %s", name)
			}
			for _, p := range rep.Probes {
				for _, leaked := range []string{"HTTP/", "secret-banner", "SSH-", "admin panel"} {
					if strings.Contains(p.Message, leaked) {
						t.Fatalf("probe %s repeats what the server sent (%q): %s", p.Name, leaked, p.Message)
					}
				}
			}
			if name == "http" && f.Reason != ReasonNotRedis {
				t.Fatalf("an HTTP server: %s (%s), want %s", f.Reason, f.Message, ReasonNotRedis)
			}
			t.Logf("%s: probe %s failed (%s): %s", name, f.Name, f.Reason, f.Message)
		})
	}
}
