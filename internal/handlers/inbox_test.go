package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/credbot/credbot/internal/store"
)

// readsInbox hands out one entry on the first read, then nothing; it passes
// every read on, and every entry forgotten by DoneInbox.
type readsInbox struct {
	recordingInbox
	n      int    // reads so far (only the one worker reads)
	before func() // runs before the first read returns
	reads  chan store.InboxRead
	done   chan string
}

func (i *readsInbox) ClaimInbox(ctx context.Context, _ string, r store.InboxRead) ([]store.InboxEntry, error) {
	select {
	case i.reads <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if i.n++; i.n > 1 {
		return nil, nil
	}
	if i.before != nil {
		i.before()
	}
	return []store.InboxEntry{{ID: "1-0", Payload: []byte(`{"kind":"home","user":"U0ALICE"}`), Deliveries: 1}}, nil
}

func (i *readsInbox) DoneInbox(_ context.Context, id string) error { i.done <- id; return nil }

func newReadsInbox() *readsInbox {
	return &readsInbox{reads: make(chan store.InboxRead, 10), done: make(chan string, 10)}
}

// A worker forgets the entry it finished with its next read, and takes an
// entry stuck with another worker only once it was held past the work
// timeout.
func TestAWorkerForgetsItsEntryWithTheNextRead(t *testing.T) {
	inbox := newReadsInbox()
	s := NewServer(refuser{}, Config{Inbox: inbox, WorkTimeout: 30 * time.Second})
	defer s.Close()
	ctx, stop := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { defer close(finished); s.RunWorkers(ctx, "replica", 1) }()

	first := <-inbox.reads
	if first.Done != "" || first.StuckAfter <= 30*time.Second {
		t.Fatalf("first read %+v: want nothing done yet, and stuck only past the 30s work timeout", first)
	}
	if second := <-inbox.reads; second.Done != "1-0" {
		t.Fatalf("second read %+v: want it to forget entry 1-0", second)
	}
	stop()
	<-finished
	if len(inbox.done) != 0 {
		t.Fatalf("entry %s forgotten again on stop, after the read that forgot it", <-inbox.done)
	}
}

// A worker that stops after a job, with no read to come, forgets the entry
// before it returns.
func TestADrainingWorkerForgetsItsLastEntry(t *testing.T) {
	inbox := newReadsInbox()
	s := NewServer(refuser{}, Config{Inbox: inbox})
	defer s.Close()
	inbox.before = s.Drain // SIGTERM while the job is in hand
	s.RunWorkers(context.Background(), "replica", 1)
	if len(inbox.reads) != 1 || len(inbox.done) != 1 || <-inbox.done != "1-0" {
		t.Fatalf("%d reads, %d entries forgotten; want one read, and entry 1-0 forgotten on the way out", len(inbox.reads), len(inbox.done))
	}
}
