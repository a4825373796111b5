package handlers

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/blockkit"
	"github.com/credbot/credbot/internal/logctx"
	"github.com/credbot/credbot/internal/store"
)

// Inbox is the durable record of acknowledged work: a 200 is a promise, so
// whatever an ack promises is recorded before the ack, in the same step as
// the replay check, and worker pools on any replica do it — at least once, so
// every job here is idempotent. Implemented by internal/store.
type Inbox interface {
	// Record stores payload unless key (a trigger_id / event_id) was
	// recorded within ttl (a repeat, not counted) or q's window is full
	// (then it also returns the time left in the window): the replay check,
	// the quota and the record are one step, one round trip before the ack.
	Record(ctx context.Context, key string, ttl time.Duration, payload []byte, q store.Quota) (store.Recorded, time.Duration, error)
	// ClaimInbox returns entries for consumer: a dead replica's first, then
	// those stuck with a live worker, then new ones (store.InboxRead).
	ClaimInbox(ctx context.Context, consumer string, r store.InboxRead) ([]store.InboxEntry, error)
	// DoneInbox forgets a processed entry.
	DoneInbox(ctx context.Context, id string) error
}

// Job kinds: what a worker does with a recorded delivery.
const (
	jobCommand = "command" // a slash command's verb
	jobAction  = "action"  // a button click
	jobModal   = "modal"   // a submitted create form
	jobHome    = "home"    // the App Home tab was opened
)

// job is what is recorded of a delivery: only the verified facts the work
// needs (who, what, where to answer), never a secret.
type job struct {
	Kind        string               `json:"kind"`
	User        string               `json:"user"`
	Team        string               `json:"team,omitempty"`
	Text        string               `json:"text,omitempty"` // command text
	Trigger     string               `json:"trigger,omitempty"`
	ResponseURL string               `json:"response_url,omitempty"`
	Action      string               `json:"action,omitempty"` // action_id
	Value       string               `json:"value,omitempty"`  // button value
	FromHome    bool                 `json:"from_home,omitempty"`
	Reason      string               `json:"reason,omitempty"` // a denier's reason (user text, bounded)
	Submission  *approval.Submission `json:"submission,omitempty"`
	// Assignment is a submitted assign form (never the BTP user: that is
	// looked up from the submitter's Slack profile when the job runs).
	Assignment *approval.AssignmentSubmission `json:"assignment,omitempty"`
}

// Unrecorded is what credbot says when it could not record the work it was
// asked for: no 200 may promise work that a crash would lose.
const Unrecorded = "credbot cannot take requests right now; nothing was recorded. Please try again in a minute."

// unrecordedAck is the ack of a delivery whose work could not be recorded:
// for a slash command its explanation (payload), else no 200 at all.
type unrecordedAck struct{ payload any }

func (s *Server) unrecorded(j job) unrecordedAck {
	if j.Kind == jobCommand {
		return unrecordedAck{ackText(":warning: " + Unrecorded)}
	}
	return unrecordedAck{}
}

// accept records j (deduplicated on key) before the ack. It returns the
// payload to ack with: ack when recorded, nil for a repeat (the first
// delivery did the work), or an unrecordedAck.
func (s *Server) accept(ctx context.Context, key string, j job, ack any) any {
	return s.acceptCounted(ctx, key, j, ack, store.Quota{})
}

// acceptCounted is accept for a delivery that counts against q (a slash
// command against its sender's per-minute limit, commandQuota): past it,
// nothing is recorded and the ack says when to try again.
func (s *Server) acceptCounted(ctx context.Context, key string, j job, ack any, q store.Quota) any {
	if s.cfg.Inbox == nil {
		// No durable inbox (unit tests): do the work after the ack, in process.
		if q.Limit > 0 {
			if refusal, over := s.overCommandLimit(ctx, j.User); over {
				return refusal
			}
		}
		if key != "" && !s.first(ctx, j.Kind, key) {
			return nil
		}
		s.async(func(ctx context.Context) { s.run(ctx, j) })
		return ack
	}
	b, err := json.Marshal(j)
	if err != nil {
		s.log.ErrorContext(ctx, "encode job", "kind", j.Kind, "user", j.User, "error", err)
		return s.unrecorded(j)
	}
	dk := ""
	if key != "" {
		dk = "slack:" + j.Kind + ":" + key
	}
	res, left, err := s.cfg.Inbox.Record(ctx, dk, dedupeTTL, b, q)
	if err != nil {
		s.log.ErrorContext(ctx, "could not record a Slack delivery before its ack; the user was told to try again",
			"kind", j.Kind, "user", j.User, "error", err)
		return s.unrecorded(j)
	}
	switch res {
	case store.RecordedRepeat:
		s.log.InfoContext(ctx, "ignored a repeated delivery", "kind", j.Kind, "user", j.User)
		return nil
	case store.RecordedOver:
		return s.refuseOverLimit(ctx, j.User, left)
	}
	return ack
}

// RunWorkers processes the inbox with n workers named "<replica>/inbox-<i>"
// until ctx ends or Drain is called; a job in progress is finished (bounded
// by WorkTimeout) before a worker stops.
func (s *Server) RunWorkers(ctx context.Context, replica string, n int) {
	if s.cfg.Inbox == nil || n <= 0 {
		return
	}
	done := make(chan struct{}, n)
	for i := range n {
		consumer := replica + "/inbox-" + strconv.Itoa(i)
		go func() { defer func() { done <- struct{}{} }(); s.work(ctx, consumer) }()
	}
	for range n {
		<-done
	}
}

func (s *Server) work(ctx context.Context, consumer string) {
	// The entry finished last is forgotten with the next read: a round trip
	// less per job. Until then a crash runs it again, as one between the job
	// and its DoneInbox would: every job is idempotent.
	done := ""
	defer func() {
		if done != "" {
			s.doneInbox(ctx, done)
		}
	}()
	for ctx.Err() == nil && !s.isDraining() {
		entries, err := s.cfg.Inbox.ClaimInbox(ctx, consumer, store.InboxRead{Block: 250 * time.Millisecond, Done: done, StuckAfter: s.stuckAfter()})
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "read the inbox", "consumer", consumer, "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		done = ""
		for i, e := range entries {
			var j job
			if err := json.Unmarshal(e.Payload, &j); err != nil || !blockkit.UserID.MatchString(j.User) {
				s.log.ErrorContext(ctx, "dropping an unreadable inbox entry", "entry", e.ID, "error", err)
			} else {
				if e.Deliveries > 1 {
					s.log.InfoContext(ctx, "taking over an inbox job another worker did not finish: its replica stopped, or it held the job past the work timeout",
						"entry", e.ID, "kind", j.Kind, "user", j.User)
				}
				// The job runs to its end even while draining: its context
				// is not ctx, only bounded by WorkTimeout.
				jctx, cancel := context.WithTimeout(s.ctx, s.cfg.WorkTimeout)
				// Every line logged about this job says whose and which.
				jctx = logctx.With(jctx, "user", j.User, "trigger", j.Trigger, "action", j.Action, "inbox_entry", e.ID)
				s.run(jctx, j)
				cancel()
			}
			if i == len(entries)-1 {
				done = e.ID
			} else {
				s.doneInbox(ctx, e.ID)
			}
		}
	}
}

// stuckAfter is how long an inbox entry may stay with a live worker before
// another takes it: past WorkTimeout its job was given up, so the worker can
// only have lost it (its read's answer never came) or be stuck. The margin
// covers the job's last steps after its context ended.
func (s *Server) stuckAfter() time.Duration { return s.cfg.WorkTimeout + time.Minute }

// doneInbox forgets a processed inbox entry, even while shutting down.
func (s *Server) doneInbox(ctx context.Context, id string) {
	if err := s.cfg.Inbox.DoneInbox(context.WithoutCancel(ctx), id); err != nil {
		s.log.WarnContext(ctx, "mark inbox entry done (it will run again)", "entry", id, "error", err)
	}
}

// run does a recorded job.
func (s *Server) run(ctx context.Context, j job) {
	o := origin{user: j.User, responseURL: j.ResponseURL}
	if j.Kind == jobHome {
		s.publishHome(ctx, j.User) // it shows whoever credbot does not serve why
		return
	}
	if err := s.admit(ctx, j.User); err != nil {
		s.warn(ctx, o, err, "admit")
		return
	}
	switch j.Kind {
	case jobCommand:
		if _, f := s.commandWork(j); f != nil {
			f(ctx)
		}
	case jobAction:
		if f := s.actionWork(j); f != nil {
			f(ctx)
			if j.FromHome && j.Action != blockkit.ActionHomePage { // a page button publishes its own page
				s.publishHome(ctx, j.User)
			}
		}
	case jobModal:
		if j.Submission != nil {
			sub := *j.Submission
			sub.User = j.User // who submitted is Slack's word, not the record's
			s.submit(ctx, o, sub)
		}
		if j.Assignment != nil {
			in := *j.Assignment
			in.User, in.BTPUser = j.User, approval.BTPUser{} // Slack's word, and the profile's
			s.assign(ctx, o, in)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
