package store

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/redistest"
)

// The audit chain serialises every transition of a deployment on its head:
// these measure what that costs. Against the REDIS_URL of `go test -bench`
// (or a redis-server of the benchmark's own), 50 goroutines at a time.

// BenchmarkAuditedTransitions: one replica; its writers take turns.
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
