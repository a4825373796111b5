package slackfake

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkWait is the cost of one wait for a call that is about to come, with
// 10,000 approval messages already recorded and 1 or 50 waits outstanding at
// a time (50 is `bot load -c 50`). A separate goroutine records the awaited
// call, as the fake's HTTP handlers do. WaitFor looks through the history;
// WaitFrom(Mark()) does not, which is what the load driver uses. Compare
// with -benchtime=200x: each op adds a call, so longer runs have more history.
func BenchmarkWait(b *testing.B) {
	for _, waiters := range []int{1, 50} {
		b.Run(fmt.Sprintf("WaitFor/history=10000/waiters=%d", waiters), func(b *testing.B) { benchWait(b, waiters, false) })
		b.Run(fmt.Sprintf("WaitFrom/history=10000/waiters=%d", waiters), func(b *testing.B) { benchWait(b, waiters, true) })
	}
}

func benchWait(b *testing.B, waiters int, fromMark bool) {
	s, err := Start("xoxb-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if fromMark {
		s.KeepLast(10_000) // 10,000 to 20,000 kept however long it runs
	}
	// An approval message's blocks are about 1.5 kB; the history shares one.
	filler := `[{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("x", 1400) + `"}},{"type":"section","fields":[{"type":"plain_text","text":"Name: someone-else"}]}]`
	old := Call{Method: "chat.postMessage", Channel: "C0APPROVALS", Params: url.Values{"blocks": {filler}}}
	for range 10_000 {
		s.record(old)
	}
	recordCh := make(chan string, waiters)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for name := range recordCh {
			blocks := `[{"type":"section","fields":[{"type":"plain_text","text":"Name: ` + name + `"}]}]`
			s.record(Call{Method: "chat.postMessage", Channel: "C0APPROVALS", Params: url.Values{"blocks": {blocks}}})
		}
	}()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range waiters {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				name := fmt.Sprintf("bench-%08d", i)
				want := `"Name: ` + name + `"`
				match := func(c Call) bool {
					return c.Method == "chat.postMessage" && c.Channel == "C0APPROVALS" && strings.Contains(c.Params.Get("blocks"), want)
				}
				var err error
				if fromMark {
					m := s.Mark()
					recordCh <- name
					_, err = s.WaitFrom(ctx, m, match)
				} else {
					recordCh <- name
					_, err = s.WaitFor(ctx, match)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(recordCh)
	<-done
}
