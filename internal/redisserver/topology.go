package redisserver

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters, each with its replicas, on
// loopback: every node a redis-server of this package.
type Cluster struct {
	Nodes []*Server
}

// Addrs are the nodes' addresses: a client's seeds.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Close stops every node.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		n.Close()
	}
}

// StartCluster starts masters*(1+replicas) nodes and joins them with
// redis-cli --cluster create (Debian's redis-tools), then waits until the
// cluster says ok on every node.
func StartCluster(masters, replicas int) (*Cluster, error) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, errors.New("redisserver: redis-cli not found on PATH (Debian's redis-tools; make test installs it)")
	}
	c := &Cluster{}
	for range masters * (1 + replicas) {
		n, err := Start(Options{Cluster: true, Args: []string{"--cluster-announce-ip", "127.0.0.1",
			"--cluster-node-timeout", "2000", "--cluster-config-file", "nodes.conf"}})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redisserver: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr})
		for {
			// Ok, and every slot range lists its replicas (CLUSTER SLOTS
			// leaves out a replica still syncing; clients learn the
			// nodes from it).
			info, err := cl.ClusterInfo(context.Background()).Result()
			slots, serr := cl.ClusterSlots(context.Background()).Result() //nolint:staticcheck // what go-redis builds its node list from
			complete := serr == nil && len(slots) > 0
			for _, sl := range slots {
				complete = complete && len(sl.Nodes) == 1+replicas
			}
			if err == nil && strings.Contains(info, "cluster_state:ok") && complete {
				break
			}
			if time.Now().After(deadline) {
				_ = cl.Close()
				c.Close()
				return nil, fmt.Errorf("redisserver: the cluster is not ok on %s after 30s: %s %v", n.Addr, info, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = cl.Close()
	}
	return c, nil
}

// SentinelGroup is a master with replicas and the Sentinels that watch
// it (master set SentinelMaster).
type SentinelGroup struct {
	Master    *Server
	Replicas  []*Server
	Sentinels []*Server
}

// SentinelAddrs are the Sentinels' addresses.
func (g *SentinelGroup) SentinelAddrs() []string {
	out := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		out[i] = s.Addr
	}
	return out
}

// Close stops every process of the group.
func (g *SentinelGroup) Close() {
	for _, s := range append(append([]*Server{g.Master}, g.Replicas...), g.Sentinels...) {
		if s != nil {
			s.Close()
		}
	}
}

// MinSentinelDownAfter is the least down-after StartSentinelGroup takes.
const MinSentinelDownAfter = 2 * time.Second

// StartSentinelGroup starts a master, its replicas and sentinels
// Sentinels (quorum: a majority) that call the master down after downAfter
// and fail over, and waits until every Sentinel knows every replica.
func StartSentinelGroup(replicas, sentinels int, downAfter time.Duration) (*SentinelGroup, error) {
	return StartSentinelGroupOn("", replicas, sentinels, downAfter)
}

// StartSentinelGroupOn is StartSentinelGroup with every process bound to
// host (default 127.0.0.1): the end-to-end tests bind the bridge's
// gateway, where pods reach them.
func StartSentinelGroupOn(host string, replicas, sentinels int, downAfter time.Duration) (*SentinelGroup, error) {
	// A Sentinel pings each instance once a second and counts an instance
	// it has just learned of (a freshly promoted master) as last heard at
	// the moment it learned of it: with a down-after of a second or less,
	// a Sentinel that hears of the promotion late can call the new master
	// down before its first ping is answered and fail over a second time,
	// which loses what the first new master took. Seen here once in about
	// six failovers with 1 s.
	if downAfter < MinSentinelDownAfter {
		return nil, fmt.Errorf("redisserver: a Sentinel down-after of %s is under %s, the least that fails over once", downAfter, MinSentinelDownAfter)
	}
	g := &SentinelGroup{}
	var err error
	// No wait before a replica's first sync (Redis waits 5 s by default
	// for more replicas to share it).
	if g.Master, err = Start(Options{Host: host, Args: []string{"--repl-diskless-sync-delay", "0"}}); err != nil {
		return nil, err
	}
	for range replicas {
		r, err := Start(Options{Host: host, ReplicaOf: g.Master})
		if err != nil {
			g.Close()
			return nil, err
		}
		g.Replicas = append(g.Replicas, r)
	}
	// Replicas that have synced: a failover to one that has not would
	// promote an empty dataset, which is not what a platform runs.
	syncDeadline := time.Now().Add(30 * time.Second)
	for _, r := range g.Replicas {
		rc := redis.NewClient(&redis.Options{Addr: r.Addr})
		for !strings.Contains(rc.Info(context.Background(), "replication").Val(), "master_link_status:up") {
			if time.Now().After(syncDeadline) {
				_ = rc.Close()
				g.Close()
				return nil, fmt.Errorf("redisserver: replica %s did not sync with its master within 30s", r.Addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = rc.Close()
	}
	for range sentinels {
		s, err := Start(Options{Host: host, SentinelOf: g.Master, SentinelQuorum: sentinels/2 + 1, SentinelDownAfter: downAfter})
		if err != nil {
			g.Close()
			return nil, err
		}
		g.Sentinels = append(g.Sentinels, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range g.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
		for {
			reps, err1 := sc.Replicas(context.Background(), SentinelMaster).Result()
			peers, err2 := sc.Sentinels(context.Background(), SentinelMaster).Result()
			if err1 == nil && err2 == nil && len(reps) == replicas && len(peers) == sentinels-1 {
				break
			}
			if time.Now().After(deadline) {
				_ = sc.Close()
				g.Close()
				return nil, fmt.Errorf("redisserver: Sentinel %s knows %d replicas and %d other Sentinels after 30s", s.Addr, len(reps), len(peers))
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = sc.Close()
	}
	return g, nil
}
