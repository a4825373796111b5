// Package redistest gives tests a real Redis: the server named by REDIS_URL (CI
// starts one), or else a redis-server started for the test in a temp dir, a
// Sentinel, or a whole Redis Cluster. Each test gets its own key prefix, and
// only its own keys are scanned or removed.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is one test's view of a real Redis server (or cluster).
type Redis struct {
	Client redis.UniversalClient
	URL    string
	Prefix string
	Server *Server // nil when REDIS_URL was used
}

// New returns a client on a real Redis and a fresh key prefix; all is cleaned up
// when the test ends.
func New(t testing.TB) *Redis {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	var srv *Server
	if u == "" {
		var err error
		srv, err = StartServer(t.TempDir(), false)
		if err != nil {
			t.Fatalf("no REDIS_URL and could not start redis-server (install it: apt-get install redis-server): %v", err)
		}
		t.Cleanup(srv.Stop)
		u = srv.URL()
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	prefix := "test-" + randHex(6)
	t.Cleanup(func() {
		ctx := context.Background()
		ks, _ := keys(ctx, c, prefix)
		for _, k := range ks {
			c.Del(ctx, k)
		}
		_ = c.Close()
	})
	return &Redis{Client: c, URL: u, Prefix: prefix, Server: srv}
}

// Attach gives a test its own prefix on the Redis at url (e.g. a server the
// test started itself), cleaned up like New's.
func Attach(t testing.TB, url string) *Redis {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis url: %v", err)
	}
	c := redis.NewClient(opts)
	prefix := "test-" + randHex(6)
	t.Cleanup(func() { _ = c.Close() })
	return &Redis{Client: c, URL: url, Prefix: prefix}
}

// Dump returns every key of this test and its value(s) as text, for scanning.
func (r *Redis) Dump(t testing.TB) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	ks, err := keys(ctx, r.Client, r.Prefix)
	if err != nil {
		t.Fatalf("scan the keys: %v", err)
	}
	for _, k := range ks {
		typ, err := r.Client.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("type %s: %v", k, err)
		}
		var v any
		switch typ {
		case "string":
			v, err = r.Client.Get(ctx, k).Result()
		case "hash":
			v, err = r.Client.HGetAll(ctx, k).Result()
		case "zset":
			v, err = r.Client.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = r.Client.XRange(ctx, k, "-", "+").Result()
		case "set":
			v, err = r.Client.SMembers(ctx, k).Result()
		case "list":
			v, err = r.Client.LRange(ctx, k, 0, -1).Result()
		}
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		out[k] = fmt.Sprint(v)
	}
	return out
}

// keys lists the keys under prefix, also when the store put the prefix in
// braces (on a cluster, "{prefix}:…"), on every primary of a cluster.
func keys(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	var (
		mu  sync.Mutex
		out []string
	)
	scan := func(ctx context.Context, c *redis.Client) error {
		for _, pattern := range []string{prefix + ":*", "{" + prefix + "}:*"} {
			iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				mu.Lock()
				out = append(out, iter.Val())
				mu.Unlock()
			}
			if err := iter.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	switch c := c.(type) {
	case *redis.ClusterClient:
		return out, c.ForEachMaster(ctx, scan)
	case *redis.Client:
		return out, scan(ctx, c)
	}
	return nil, fmt.Errorf("cannot scan a %T", c)
}

// Server is a redis-server process on 127.0.0.1.
type Server struct {
	cmd   *exec.Cmd
	done  chan struct{} // closed once cmd exited
	port  int
	dir   string
	aof   bool
	extra []string // more redis-server arguments (cluster mode)
}

// StartServer runs redis-server on a free loopback port with its files in dir;
// aof turns on the append-only file (fsync always), for restart tests.
func StartServer(dir string, aof bool) (*Server, error) {
	return startOn(dir, aof, freePort)
}

// startAttempts bounds the ports tried when others keep taking them.
const startAttempts = 5

// startOn starts a server on the port pick gives, and on a fresh free port
// if another process took that one first (after the first try pick is not
// asked again: it may keep giving the taken port).
func startOn(dir string, aof bool, pick func() (int, error)) (*Server, error) {
	var err error
	for range startAttempts {
		var port int
		if port, err = pick(); err != nil {
			return nil, err
		}
		pick = freePort
		s := &Server{port: port, dir: dir, aof: aof}
		if err = s.start(); !errors.Is(err, errPortTaken) {
			return s, err
		}
	}
	return nil, err
}

// errPortTaken: the server that answers on the port is not the one started
// (it could not bind it: another process took the port after it was found free).
var errPortTaken = errors.New("port taken by another process")

func (s *Server) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return err
	}
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--daemonize", "no", "--loglevel", "warning"}
	if s.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.waitExit()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		var info string
		info, err = c.Info(ctx, "server").Result()
		cancel()
		if err == nil {
			// The process answering must be ours.
			ours := strconv.Itoa(s.cmd.Process.Pid)
			if pid := infoField(info, "process_id"); pid != ours {
				s.Stop()
				return fmt.Errorf("%w: %s answers as process %s, not as the redis-server started (%s)", errPortTaken, s.Addr(), pid, ours)
			}
			return nil
		}
		select {
		case <-s.done:
			// It could not bind its port (or its cluster bus port).
			s.Stop()
			return fmt.Errorf("%w: redis-server on %s exited at start", errPortTaken, s.Addr())
		case <-time.After(20 * time.Millisecond): // polling a starting process; not a timing assertion
		}
	}
	s.Stop()
	return fmt.Errorf("redis-server did not answer on %s: %w", s.Addr(), err)
}

// infoField is one field of an INFO reply ("" if it has none).
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is a redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		if s.done != nil {
			<-s.done
		} else {
			_ = s.cmd.Wait()
		}
		s.cmd, s.done = nil, nil
	}
}

// waitExit reaps the started process; done is closed when it exited.
func (s *Server) waitExit() {
	cmd, done := s.cmd, make(chan struct{})
	s.done = done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
}

// Restart kills the server (like a crash) and starts it again on the same port
// and directory; with AOF on, acknowledged writes survive.
func (s *Server) Restart() error {
	s.Stop()
	_ = os.Remove(filepath.Join(s.dir, "dump.rdb"))
	return s.start()
}

// StartSentinel runs a Sentinel on a free loopback port that monitors the
// primary at primaryAddr under the name master. Stop it with Stop.
func StartSentinel(dir, primaryAddr, master string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	host, pport, err := net.SplitHostPort(primaryAddr)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
		port, dir, master, host, pport, master)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	s := &Server{port: port, dir: dir}
	s.cmd = exec.Command(bin, conf, "--sentinel")
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		addr, err2 := c.GetMasterAddrByName(ctx, master).Result()
		cancel()
		if err2 == nil && len(addr) == 2 {
			return s, nil
		}
		err = err2
		time.Sleep(20 * time.Millisecond) // polling a starting process; not a timing assertion
	}
	s.Stop()
	return nil, fmt.Errorf("sentinel on %s does not know %s: %v", s.Addr(), master, err)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
