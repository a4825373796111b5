package store

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/redistest"
)

// The audit chain serialises every transition of a deployment on its head:
// these measure what that costs. Against the REDIS_URL of `go test -bench`
// (or a redis-server of the benchmark's own), 50 goroutines at a time.

// BenchmarkAuditedTransitions: one replica; its writers' entries go out in
// pipelined rounds.
func BenchmarkAuditedTransitions(b *testing.B) {
	benchmarkTransitions(b, 1)
}

// BenchmarkAuditedTransitionsFourReplicas: four replicas race for the head.
func BenchmarkAuditedTransitionsFourReplicas(b *testing.B) {
	benchmarkTransitions(b, 4)
}

func benchmarkTransitions(b *testing.B, replicas int) {
	ctx := context.Background()
	r := redistest.New(b)
	keys := RandomAuditKeys()
	var stores []*Store
	for range replicas {
		s, err := New(ctx, r.Client, r.Prefix)
		if err != nil {
			b.Fatal(err)
		}
		s.UseAuditKeys(keys)
		stores = append(stores, s)
	}
	var n atomic.Int64
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			id := fmt.Sprintf("r%012d", i)
			if err := stores[int(i)%len(stores)].Create(ctx, pending(id), approval.AuditEntry{RequestID: id, To: approval.StatePending}, time.Now().Add(time.Hour)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
	b.StopTimer()
	if rep, err := stores[0].VerifyAudit(ctx); err != nil || len(rep.Problems) > 0 {
		b.Fatalf("%v %v", err, rep.Problems)
	}
}

// benchEntry is an audit entry of a typical size: a decision, with its rule
// and policy hash.
var benchEntry = approval.AuditEntry{RequestID: "r0123456789ab", From: approval.StatePending, To: approval.StateApproved,
	Actor: "U0123456789", At: time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC),
	Rule:       "p, role:security, directory:55555555-6666-4777-8888-999999999999, approve, allow (policy.csv:14)",
	PolicyHash: "2260932c3b5723260afd6121a21c0ec54d3b9c503e0ac25b42c423dea4321d04"}

// BenchmarkAuditMACsPerTransition: what the key adds to a transition, in Go,
// off Redis: the entry's MAC and the head's.
func BenchmarkAuditMACsPerTransition(b *testing.B) {
	keys := RandomAuditKeys()
	e, err := json.Marshal(benchEntry)
	if err != nil {
		b.Fatal(err)
	}
	entry, chain := string(e), newChainID()
	prev := keys.entryMAC(chain, 1, "", entry)
	b.SetBytes(int64(len(entry)))
	for b.Loop() {
		m := keys.entryMAC(chain, 2, prev, entry)
		_ = keys.sign(labelHead, chain, "2", m)
	}
}

// BenchmarkAuditVerify10k: `bot audit verify` of a trail of 10,000 entries
// in a real redis-server (the REDIS_URL of `go test -bench`, or one of its
// own): reads the stream in pages and checks every MAC, link, the head and
// the genesis marker.
func BenchmarkAuditVerify10k(b *testing.B) {
	const entries = 10_000
	ctx := context.Background()
	r := redistest.New(b)
	s, err := New(ctx, r.Client, r.Prefix)
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= entries {
				if err := s.Note(ctx, benchEntry); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for b.Loop() {
		rep, err := s.VerifyAudit(ctx)
		if err != nil || len(rep.Problems) > 0 || rep.Entries != entries {
			b.Fatalf("%d entries, %v %v", rep.Entries, err, rep.Problems)
		}
	}
	b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
