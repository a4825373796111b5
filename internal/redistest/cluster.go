package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoRedisCLI means redis-cli, which creates the cluster, is not installed.
var ErrNoRedisCLI = errors.New("redis-cli is not installed")

// Cluster is a Redis Cluster of real redis-server processes on 127.0.0.1:
// three primaries with one replica each, AOF on, and a node timeout of one
// second, so that a failover takes seconds.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts six cluster nodes with their files under dir, joins them
// with `redis-cli --cluster create --cluster-replicas 1` and waits until every
// node reports cluster_state:ok and every replica is linked to its primary.
// Without redis-cli it fails with ErrNoRedisCLI. Stop it with Stop.
func StartCluster(dir string) (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRedisCLI, err)
	}
	c := &Cluster{}
	for range 6 {
		s, err := startNode(dir)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Addrs are the host:port of every node.
func (c *Cluster) Addrs() []string {
	out := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// URL is credbot's redis-cluster:// URL with every node as a seed.
func (c *Cluster) URL() string { return "redis-cluster://" + strings.Join(c.Addrs(), ",") }

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

func (c *Cluster) running() []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		if n.cmd != nil {
			out = append(out, n)
		}
	}
	return out
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// every running replica's link to its primary is up.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	return poll(ctx, func(ctx context.Context) error {
		for _, n := range c.running() {
			info, err := n.do(ctx, "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster state not ok", n.Addr())
			}
			repl, err := n.do(ctx, "INFO", "replication")
			if err != nil {
				return err
			}
			if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return fmt.Errorf("%s: replica not linked to its primary", n.Addr())
			}
		}
		return nil
	})
}

// Failover kills (SIGKILL) the primary that holds key's slot, after its
// replica has every write it acknowledged (replication is asynchronous: a
// write not yet replicated would be lost), and waits until every surviving
// node sees that replica promoted to primary of the slot and reports
// cluster_state:ok. It returns the killed primary and the promoted replica.
func (c *Cluster) Failover(ctx context.Context, key string) (old, promoted *Server, err error) {
	slot, err := c.running()[0].slotOf(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	// Every node agrees on the slot's primary and knows a replica of it
	// (gossip may lag the cluster's creation), and the replicas are in sync.
	var owner *clusterNode
	replicas := map[string]bool{}
	err = poll(ctx, func(ctx context.Context) error {
		owner = nil
		for _, s := range c.running() {
			nodes, err := s.clusterNodes(ctx)
			if err != nil {
				return err
			}
			o := ownerOf(nodes, slot)
			if o == nil || (owner != nil && o.id != owner.id) {
				return fmt.Errorf("%s does not see the primary of slot %d others see", s.Addr(), slot)
			}
			owner = o
			known := false
			for _, n := range nodes {
				if n.primary == o.id {
					replicas[n.id], known = true, true
				}
			}
			if !known {
				return fmt.Errorf("%s knows no replica of %s", s.Addr(), o.addr)
			}
		}
		if old = c.byAddr(owner.addr); old == nil {
			return fmt.Errorf("slot %d is held by %s, not one of ours", slot, owner.addr)
		}
		return old.replicasInSync(ctx)
	})
	if err != nil {
		return nil, nil, err
	}
	old.Stop()
	err = poll(ctx, func(ctx context.Context) error {
		var winner *clusterNode
		for _, s := range c.running() {
			nodes, err := s.clusterNodes(ctx)
			if err != nil {
				return err
			}
			o := ownerOf(nodes, slot)
			if o == nil || !replicas[o.id] || (winner != nil && winner.id != o.id) {
				return fmt.Errorf("%s does not yet see a replica of %s holding slot %d", s.Addr(), owner.addr, slot)
			}
			winner = o
			info, err := s.do(ctx, "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster state not ok", s.Addr())
			}
		}
		promoted = c.byAddr(winner.addr)
		return nil
	})
	if err != nil {
		return old, nil, fmt.Errorf("failover of %s: %w", owner.addr, err)
	}
	return old, promoted, nil
}

func (c *Cluster) byAddr(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// AttachCluster gives a test its own prefix on a cluster, through a cluster
// client closed when the test ends.
func AttachCluster(t testing.TB, c *Cluster) *Redis {
	t.Helper()
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: time.Second})
	t.Cleanup(func() { _ = rc.Close() })
	return &Redis{Client: rc, URL: c.URL(), Prefix: "test-" + randHex(6)}
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, primary string
	flags             []string
	slots             [][2]int
}

func (n clusterNode) has(flag string) bool {
	for _, f := range n.flags {
		if f == flag {
			return true
		}
	}
	return false
}

// ownerOf is the healthy primary that holds slot in one node's view.
func ownerOf(nodes []clusterNode, slot int) *clusterNode {
	for i, n := range nodes {
		if !n.has("master") || n.has("fail") || n.has("fail?") {
			continue
		}
		for _, r := range n.slots {
			if slot >= r[0] && slot <= r[1] {
				return &nodes[i]
			}
		}
	}
	return nil
}

// parseClusterNodes reads CLUSTER NODES: <id> <ip:port@cport[,hostname]>
// <flags> <primary id or -> <ping> <pong> <epoch> <link> <slot or range>…
func parseClusterNodes(text string) ([]clusterNode, error) {
	var out []clusterNode
	for line := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("bad CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), primary: f[3]}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being migrated
			}
			lo, hi, isRange := strings.Cut(s, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad slot %q in CLUSTER NODES", s)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, nil
}

// do runs one command on this node alone and returns its text reply.
func (s *Server) do(ctx context.Context, args ...any) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		return "", fmt.Errorf("%s %v: %w", s.Addr(), args, err)
	}
	return fmt.Sprint(v), nil
}

func (s *Server) slotOf(ctx context.Context, key string) (int, error) {
	v, err := s.do(ctx, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

func (s *Server) clusterNodes(ctx context.Context) ([]clusterNode, error) {
	text, err := s.do(ctx, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	return parseClusterNodes(text)
}

// replicasInSync reports an error until this primary has online replicas and
// each has acknowledged its whole replication stream.
func (s *Server) replicasInSync(ctx context.Context) error {
	info, err := s.do(ctx, "INFO", "replication")
	if err != nil {
		return err
	}
	var offset, replicas int
	fields := map[string]string{}
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		fields[k] = v
	}
	if offset, err = strconv.Atoi(fields["master_repl_offset"]); err != nil {
		return fmt.Errorf("%s: no master_repl_offset", s.Addr())
	}
	for k, v := range fields {
		if !strings.HasPrefix(k, "slave") || strings.HasPrefix(k, "slave_") {
			continue
		}
		// slaveN:ip=…,port=…,state=online,offset=N,lag=N
		kv := map[string]string{}
		for p := range strings.SplitSeq(v, ",") {
			a, b, _ := strings.Cut(p, "=")
			kv[a] = b
		}
		got, _ := strconv.Atoi(kv["offset"])
		if kv["state"] != "online" || got < offset {
			return fmt.Errorf("%s: replica %s:%s at offset %d of %d", s.Addr(), kv["ip"], kv["port"], got, offset)
		}
		replicas++
	}
	if replicas == 0 {
		return fmt.Errorf("%s: no replica online", s.Addr())
	}
	return nil
}

// poll calls check until it succeeds or ctx ends (then with check's last error).
func poll(ctx context.Context, check func(context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond): // polling processes; not a timing assertion
		}
	}
}

// startNode starts one cluster node with AOF on a free client port and a
// free cluster bus port, on other ports if another process took one of them.
func startNode(dir string) (*Server, error) {
	var err error
	for range startAttempts {
		var ports []int
		if ports, err = freePorts(2); err != nil {
			return nil, err
		}
		port, bus := ports[0], ports[1]
		d := filepath.Join(dir, strconv.Itoa(port))
		if err = os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		s := &Server{port: port, dir: d, aof: true, extra: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port),
			"--cluster-node-timeout", "1000", "--cluster-port", strconv.Itoa(bus),
			"--repl-diskless-sync-delay", "0", // replicas sync at once, not after 5 s
		}}
		if err = s.start(); !errors.Is(err, errPortTaken) {
			return s, err
		}
	}
	return nil, err
}

// freePorts returns n distinct free loopback ports (all held open until
// every one is found, so none is handed out twice).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
