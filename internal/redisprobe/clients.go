package redisprobe

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/stratops/stratops/pkg/messaging"
)

// Clients caches go-redis clients per connection setting (the secret
// contents included, so a rotated password gets a new client), shares them
// between the users (Strategies) that use the same Redis, and closes one
// when its last user releases it.
type Clients struct {
	mu      sync.Mutex
	clients map[string]*sharedClient // by setting hash
	users   map[string]string        // user -> setting hash
	// OnChange, when set, is told how many clients are open.
	OnChange func(open int)
}

type sharedClient struct {
	client redis.UniversalClient
	users  map[string]bool
}

// NewClients makes an empty cache.
func NewClients() *Clients {
	return &Clients{clients: map[string]*sharedClient{}, users: map[string]string{}}
}

// SettingKey hashes every field of the setting; the password is in the hash,
// never in a string that could be logged.
func SettingKey(c messaging.RedisConfig) string {
	h := sha256.New()
	addrs := append([]string(nil), c.Addrs...)
	sort.Strings(addrs)
	// Everything that makes a connection one identity or another: the
	// client certificate too, so that no Strategy connects with another's.
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s\x00%s\x00%t\x00%s\x00%s\x00%t\x00%s\x00%s\x00%s\x00%s\x00%s",
		c.Topology, strings.Join(addrs, ","), c.MasterName, c.DB, c.Username, c.Password,
		c.TLS, c.CAFile+string(c.CAPEM), c.ServerName, c.InsecureSkipVerify, c.DialTimeout, c.ReadTimeout, c.WriteTimeout,
		c.ClientCertFile+string(c.ClientCertPEM), c.ClientKeyFile+string(c.ClientKeyPEM))
	return hex.EncodeToString(h.Sum(nil))
}

// Acquire returns the client for user's setting, creating it if needed.
// A user that held a client for another setting releases that one.
func (cs *Clients) Acquire(user string, c messaging.RedisConfig, build func(messaging.RedisConfig) (redis.UniversalClient, error)) (redis.UniversalClient, error) {
	return cs.AcquireSetting(user, SettingKey(c), c, build)
}

// AcquireSetting is Acquire for a caller that has the setting's key
// (SettingKey(c)) already.
func (cs *Clients) AcquireSetting(user, key string, c messaging.RedisConfig, build func(messaging.RedisConfig) (redis.UniversalClient, error)) (redis.UniversalClient, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if old, ok := cs.users[user]; ok && old != key {
		cs.releaseLocked(user)
	}
	sc, ok := cs.clients[key]
	if !ok {
		client, err := build(c)
		if err != nil {
			return nil, err
		}
		sc = &sharedClient{client: client, users: map[string]bool{}}
		cs.clients[key] = sc
	}
	sc.users[user] = true
	cs.users[user] = key
	cs.changed()
	return sc.client, nil
}

// Release drops user's hold; the client closes when nobody holds it.
func (cs *Clients) Release(user string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.releaseLocked(user)
	cs.changed()
}

func (cs *Clients) releaseLocked(user string) {
	key, ok := cs.users[user]
	if !ok {
		return
	}
	delete(cs.users, user)
	sc := cs.clients[key]
	if sc == nil {
		return
	}
	delete(sc.users, user)
	if len(sc.users) == 0 {
		_ = sc.client.Close()
		delete(cs.clients, key)
	}
}

// Open is how many clients are open.
func (cs *Clients) Open() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.clients)
}

func (cs *Clients) changed() {
	if cs.OnChange != nil {
		cs.OnChange(len(cs.clients))
	}
}
