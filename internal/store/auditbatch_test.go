package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/approval"
)

// Writers of one process that queue behind a busy writer go out together in
// one pipelined round, not one round trip each.
func TestQueuedAuditWritersShareOneRound(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	const queued = 20
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var seqs []int64
	s.OnAudit(func(r AuditRecord) {
		once.Do(func() { close(entered); <-release }) // the first writer's entry holds its round
		mu.Lock()
		seqs = append(seqs, r.Seq)
		mu.Unlock()
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Note(ctx, approval.AuditEntry{Actor: "U1", Note: "first"}); err != nil {
			t.Error(err)
		}
	})
	<-entered
	for i := range queued {
		wg.Go(func() {
			if err := s.Note(ctx, approval.AuditEntry{Actor: "U1", Note: fmt.Sprint("queued ", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	waitQueued(s, queued) // every writer is queued behind the held round
	roundsBefore := s.audit.rounds.Load()
	close(release)
	wg.Wait()
	if got := s.audit.rounds.Load() - roundsBefore; got != 1 {
		t.Fatalf("%d queued entries took %d rounds to Redis, want 1", queued, got)
	}
	if rep := mustVerify(t, s); rep.Entries != queued+1 {
		t.Fatalf("%d entries, want %d", rep.Entries, queued+1)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("the sink saw seq %d after %d", seqs[i], seqs[i-1])
		}
	}
}

// An entry refused inside a round (its request moved on) writes nothing and
// its writer learns why; the entries chained after it in the same round are
// written all the same, and the chain has no gap.
func TestARefusedEntryInARoundLeavesNoGap(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	const n = 60
	for i := range n {
		id := fmt.Sprintf("r%012d", i)
		if err := s.Create(ctx, pending(id), approval.AuditEntry{RequestID: id, To: approval.StatePending}, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("r%012d", i)
			next := pending(id)
			next.State = approval.StateDenied
			version := int64(1)
			if i%2 == 0 {
				version = 7 // stale: refused
			}
			errs[i] = s.Apply(ctx, next, approval.StatePending, version, approval.AuditEntry{RequestID: id, From: approval.StatePending, To: approval.StateDenied}, approval.Effects{ClearDeadline: true, ReleaseName: true})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && !errors.Is(err, approval.ErrConflict) {
			t.Errorf("stale transition %d: %v, want ErrConflict", i, err)
		}
		if i%2 == 1 && err != nil {
			t.Errorf("transition %d: %v", i, err)
		}
		got, err := s.Get(ctx, fmt.Sprintf("r%012d", i))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]approval.State{true: approval.StatePending, false: approval.StateDenied}[i%2 == 0]; got.State != want {
			t.Errorf("request %d is %s, want %s", i, got.State, want)
		}
	}
	if rep := mustVerify(t, s); rep.Entries != n+n/2 || rep.Head.Seq != n+n/2 {
		t.Fatalf("%d entries up to seq %d, want %d", rep.Entries, rep.Head.Seq, n+n/2)
	}
}

// A writer whose context ends while its entry waits in the queue takes it
// back: nothing is written for it.
func TestAQueuedAuditWriterThatGivesUpWritesNothing(t *testing.T) {
	s, _ := newStore(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.OnAudit(func(AuditRecord) { once.Do(func() { close(entered); <-release }) })
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Note(context.Background(), approval.AuditEntry{Actor: "U1", Note: "first"}); err != nil {
			t.Error(err)
		}
	})
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Note(ctx, approval.AuditEntry{Actor: "U1", Note: "given up"}) }()
	waitQueued(s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a writer that gave up got %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	if rep := mustVerify(t, s); rep.Entries != 1 {
		t.Fatalf("%d entries, want only the first", rep.Entries)
	}
}

// waitQueued waits until n writers' entries wait in s's queue.
func waitQueued(s *Store, n int) {
	for {
		s.audit.qmu.Lock()
		queued := len(s.audit.queue)
		s.audit.qmu.Unlock()
		if queued == n {
			return
		}
		time.Sleep(time.Millisecond) // polling a condition, not a timing assertion
	}
}
