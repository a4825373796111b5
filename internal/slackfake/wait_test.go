package slackfake

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"
)

func method(m string) func(Call) bool { return func(c Call) bool { return c.Method == m } }

func TestWaitForFindsPastAndFutureCalls(t *testing.T) {
	s, err := Start("xoxb-test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.record(Call{Method: "a"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := s.WaitFor(ctx, method("a")); err != nil || c.Method != "a" {
		t.Fatalf("past call: %v %v", c, err)
	}
	go func() { time.Sleep(10 * time.Millisecond); s.record(Call{Method: "b"}) }()
	if c, err := s.WaitFor(ctx, method("b")); err != nil || c.Method != "b" {
		t.Fatalf("future call: %v %v", c, err)
	}
}

func TestWaitCountSeesEachCallOnceInOrder(t *testing.T) {
	s, err := Start("xoxb-test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		s.record(Call{Method: "m", TS: strconv.Itoa(i)})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 5; i < 10; i++ {
			s.record(Call{Method: "m", TS: strconv.Itoa(i)})
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := s.WaitCount(ctx, 10, method("m"))
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if c.TS != strconv.Itoa(i) {
			t.Fatalf("call %d is %s: not each once, in order", i, c.TS)
		}
	}
}

func TestWaitFromIgnoresCallsBeforeTheMark(t *testing.T) {
	s, err := Start("xoxb-test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.record(Call{Method: "m", TS: "before"})
	mark := s.Mark()
	s.record(Call{Method: "m", TS: "after"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := s.WaitFrom(ctx, mark, method("m")); err != nil || c.TS != "after" {
		t.Fatalf("got %q, %v; want the call after the mark", c.TS, err)
	}
}

func TestAWaitThatEndsLeavesNoWaiterBehind(t *testing.T) {
	s, err := Start("xoxb-test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.WaitFor(ctx, method("never")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the deadline", err)
	}
	s.wmu.Lock()
	n := len(s.waiters)
	s.wmu.Unlock()
	if n != 0 {
		t.Fatalf("%d waiters left after their waits ended", n)
	}
}

func TestKeepLastForgetsOldCallsAndMessages(t *testing.T) {
	s, err := Start("xoxb-test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.KeepLast(3)
	for i := range 10 {
		s.record(Call{Method: "m", TS: strconv.Itoa(i)})
	}
	if n := len(s.Calls()); n < 3 || n >= 6 {
		t.Fatalf("%d calls kept, want 3 to 5", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.WaitFrom(ctx, 0, method("m")); err == nil {
		t.Fatal("WaitFrom a forgotten mark succeeded")
	}
	if c, err := s.WaitFrom(ctx, 9, method("m")); err != nil || c.TS != "9" {
		t.Fatalf("got %q, %v; want the last call", c.TS, err)
	}
}
