package approval

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/credbot/credbot/internal/logctx"
)

// The lifecycle, in one place. Every arrow is one Store.Apply (or Store.Take)
// compare-and-set that also writes its audit entry:
//
//	PENDING ──deny──▶ DENIED      PENDING ──cancel──▶ CANCELLED      PENDING ──deadline──▶ EXPIRED
//	PENDING ──approvals reach quorum──▶ APPROVED (+ mint job queued, same step)
//	APPROVED ──claimed by one worker──▶ MINTING
//	MINTING ──name seen free at BTP──▶ MINTING (NameFreeAt recorded: the name is ours now)
//	MINTING ──a credential of that name exists──▶ FAILED (it is someone else's; nothing deleted)
//	MINTING ──BTP create ok──▶ ISSUED (secret sealed with the claim-window TTL)
//	MINTING ──created, but no token with it──▶ FAILED (the Issuer deleted it; requester told)
//	MINTING ──BTP refused──▶ FAILED (requester told why)
//	MINTING ──worker died──▶ (job rescued) if NameFreeAt: delete by name at BTP; create again
//	ISSUED ──requester clicks Reveal──▶ DELIVERED (secret taken and deleted atomically)
//	ISSUED ──claim window over──▶ REVOKED (deleted at BTP under a lease, requester told)
//	DELIVERED ──reply to Slack failed──▶ REVOKED (deleted at BTP, requester told)
//	DELIVERED ──lifetime over / admin delete──▶ DELETED (deleted at BTP under a lease)
//
// A request holds the reservation of its scope and name from Submit until it
// ends (Effects.ReleaseName), so no two requests ever act on one name, and no
// automatic path deletes by name unless NameFreeAt says the name was free at
// BTP when this request took it.
//
// Pending requests remind their approvers with backoff and escalate; delivered
// credentials warn their owner before they expire. Every deadline lives in the
// store's deadline set, which any replica may sweep. Anything that can happen
// twice — a double click, a replayed request, two replicas, a redelivered mint
// job, two sweepers — meets a state or version that no longer matches and does
// nothing.

// Notifier tells people what happened. Implemented by the Slack adapter. None of
// its methods ever receives secret material.
type Notifier interface {
	// PostApproval posts the request with Approve/Deny buttons for approvers and
	// returns where the message lives.
	PostApproval(ctx context.Context, r *Request, q QuorumStatus) (channel, ts string, err error)
	// DMApprovers sends the approval message, with the same buttons, to the
	// approvers' DMs when the policy routes the request's scope so, and
	// returns where the copies went (nil when it does not). Failures are its
	// own to log: the channel message is the one that must get through.
	DMApprovers(ctx context.Context, r *Request, q QuorumStatus) []MessageRef
	// UpdateApproval rewrites the approval message to show progress or the outcome.
	UpdateApproval(ctx context.Context, r *Request, q QuorumStatus) error
	// Tell sends the requester a plain notice in their DM.
	Tell(ctx context.Context, r *Request, text string) error
	// Denied tells the requester who denied their request and, when given,
	// why (r.DenyReason: user text, to be shown inert).
	Denied(ctx context.Context, r *Request) error
	// OfferReveal DMs the requester a notice, without the secret, with a Reveal button.
	OfferReveal(ctx context.Context, r *Request, window time.Duration) (channel, ts string, err error)
	// Revealed rewrites the DM notice once the secret has been shown (r is
	// DELIVERED) or could not be and the credential was deleted (REVOKED).
	Revealed(ctx context.Context, r *Request) error
	// Remind nudges the approvers of a pending request; escalate also tells the
	// escalation target.
	Remind(ctx context.Context, r *Request, q QuorumStatus, escalate bool) error
	// WarnExpiry tells the owner their credential will be deleted at
	// r.ExpiresAt, offering to delete it now.
	WarnExpiry(ctx context.Context, r *Request) error

	// AlertBreakglass announces a break-glass at once — who, what, why, until
	// when — with Acknowledge and Revoke now buttons, in the break-glass
	// channel and to the escalation target; it returns where the alerts live.
	AlertBreakglass(ctx context.Context, r *Request) ([]MessageRef, error)
	// UpdateBreakglass rewrites the alerts once it is acknowledged or ended.
	UpdateBreakglass(ctx context.Context, r *Request) error
	// EscalateBreakglass tells the escalation target, again, that a
	// break-glass has not been acknowledged.
	EscalateBreakglass(ctx context.Context, r *Request) error
	// PostExtension asks the approvers to approve r.Extension; UpdateExtension
	// rewrites that message with its outcome (ext is the extension decided).
	PostExtension(ctx context.Context, r *Request, q QuorumStatus) (channel, ts string, err error)
	UpdateExtension(ctx context.Context, r *Request, ext Extension, outcome string) error
}

// Config holds the lifecycle's knobs.
type Config struct {
	PendingTTL  time.Duration // how long a request may wait for approval
	ClaimWindow time.Duration // how long an issued secret waits for its reveal
	MaxLifetime time.Duration // the longest a credential may live (and the default)
	// RotationGrace is how long a rotated credential lives on after the new
	// one was revealed (rotate.go).
	RotationGrace time.Duration
	// RemindAfter is the wait before the first approver reminder; each later
	// reminder waits twice as long. EscalateAfter reminders in, the escalation
	// target is told as well.
	RemindAfter   time.Duration
	EscalateAfter int
	// ExpiryWarning is how long before expiry the owner is told (at most a
	// tenth of the credential's lifetime).
	ExpiryWarning time.Duration
	// RevokeLease is how long a worker may take to delete at BTP before another
	// worker takes over.
	RevokeLease time.Duration
	// MaxMintDeliveries bounds how often a mint job is retried after temporary
	// failures before the request is failed and the requester told.
	MaxMintDeliveries int64
	// Hooks run at the steps of minting where a crash hurts most; tests use them
	// to kill a worker there.
	Hooks Hooks
	// Replica names this process in the store's liveness leases. A revocation
	// lease names the replica that holds it, so that another replica takes it
	// over as soon as that one's liveness lease lapses, not when RevokeLease
	// runs out.
	Replica string
	// Observer, when set, is told of every transition and reveal, for metrics.
	Observer Observer
	// AuditMirror, when set, is handed every audit entry after it was written
	// (e.g. to post it to a Slack audit channel). It must not block: the Redis
	// stream is the record; the mirror is a convenience.
	AuditMirror func(AuditEntry)
	// MaxPendingPerUser is how many requests one requester may have waiting
	// for approval at a time (0: no limit); LookupCache is how long list and
	// get answers from BTP are kept (0: not at all). See limits.go.
	MaxPendingPerUser int
	LookupCache       time.Duration
	// Roles assigns role collections at BTP, for just-in-time access
	// (assign.go); nil turns /credbot assign off. Assign configures it.
	Roles  RoleAssigner
	Assign AssignConfig
	// Breakglass configures the emergency path (breakglass.go).
	Breakglass BreakglassConfig
}

// Hooks are called, when set, at the named steps of Mint.
type Hooks struct {
	AfterClaim  func(id string) // MINTING written, BTP not called yet
	AfterCreate func(id string) // created at BTP, nothing written to the store yet
	AfterSeal   func(id string) // ISSUED with the sealed secret written, no DM yet
	AfterLease  func(id string) // revocation lease taken, BTP delete (or unassign) not called yet
	// AfterRetireOld: a rotation's old credential is deleted and its request
	// DELETED; the rotation (id) is not marked done yet.
	AfterRetireOld func(id string)
	AfterIntent    func(id string) // assignment: AbsentAt written, BTP assign not called yet
	AfterAssign    func(id string) // assignment: assigned at BTP, nothing written to the store yet
	// BeforeAdminDelete: an admin's delete of a credential no request holds,
	// its name held for the delete, BTP not called yet.
	BeforeAdminDelete func(name string)
}

func call(h func(string), id string) {
	if h != nil {
		h(id)
	}
}

// Service runs the lifecycle. It is safe for concurrent use by many goroutines
// and many replicas sharing one Store.
type Service struct {
	store    Store
	auth     Authorizer
	issuer   Issuer
	notify   Notifier
	sealer   *Sealer
	clock    Clock
	log      *slog.Logger
	cfg      Config
	maxRetry int
}

// NewService wires the lifecycle to its adapters.
func NewService(store Store, auth Authorizer, issuer Issuer, notify Notifier, sealer *Sealer, clock Clock, log *slog.Logger, cfg Config) *Service {
	if cfg.PendingTTL <= 0 {
		cfg.PendingTTL = 24 * time.Hour
	}
	if cfg.ClaimWindow <= 0 {
		cfg.ClaimWindow = 15 * time.Minute
	}
	if cfg.MaxMintDeliveries <= 0 {
		cfg.MaxMintDeliveries = 5
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = 90 * 24 * time.Hour
	}
	if cfg.RemindAfter <= 0 {
		cfg.RemindAfter = time.Hour
	}
	if cfg.EscalateAfter <= 0 {
		cfg.EscalateAfter = 3
	}
	if cfg.ExpiryWarning <= 0 {
		cfg.ExpiryWarning = 7 * 24 * time.Hour
	}
	if cfg.RotationGrace <= 0 {
		cfg.RotationGrace = 24 * time.Hour
	}
	if cfg.RevokeLease <= 0 {
		cfg.RevokeLease = 2 * time.Minute
	}
	cfg.Breakglass = cfg.Breakglass.withDefaults()
	cfg.Assign = cfg.Assign.withDefaults()
	if clock == nil {
		clock = systemClock{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, auth: auth, notify: notify, sealer: sealer, clock: clock, log: log, cfg: cfg, maxRetry: 32}
	s.issuer = forgetful{Issuer: issuer, s: s} // what credbot changes at BTP is not served stale
	return s
}

// Submission is a new request as typed by the requester.
type Submission struct {
	User     string
	Team     string
	Scope    Scope
	Name     string
	ReadOnly bool
	Reason   string
	// Certificate, when set, is the requester's X.509 client certificate
	// (PEM) for a certificate credential; Submit checks it (CheckCertificate).
	Certificate string `json:"certificate,omitempty"`
	// ExpiresIn is the credential's lifetime; zero means the maximum.
	ExpiresIn time.Duration `json:"expires_in,omitempty"`
	// Key, when set, identifies the submission (a Slack trigger or view id):
	// submitting it again returns the request it made instead of a new one.
	Key string `json:"key,omitempty"`
}

// UserError is an error whose text is meant for the person who caused it.
type UserError struct {
	Msg string
	Err error
}

func (e *UserError) Error() string { return e.Msg }
func (e *UserError) Unwrap() error { return e.Err }

func userErr(kind error, format string, a ...any) error {
	return &UserError{Msg: fmt.Sprintf(format, a...), Err: kind}
}

const maxReason = 500

// Submit validates and authorizes a request, stores it as PENDING and posts it to
// the approvers.
func (s *Service) Submit(ctx context.Context, in Submission) (*Request, error) {
	if err := in.Scope.Validate(); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if in.Reason == "" {
		return nil, userErr(ErrInvalid, "a --reason is required")
	}
	if len(in.Reason) > maxReason {
		return nil, userErr(ErrInvalid, "the reason is longer than %d characters", maxReason)
	}
	id := newID()
	if in.Key != "" {
		// Submitted before (its job ran again after a crash): carry on with
		// the request it made rather than make a second one.
		id = idFor(in.User, in.Key)
		if r, err := s.store.Get(ctx, id); err == nil {
			return s.resume(ctx, r)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	if in.Name == "" {
		in.Name = "credbot-" + id
	}
	if err := ValidateName(in.Name); err != nil {
		return nil, &UserError{Msg: err.Error(), Err: ErrInvalid}
	}
	var err error
	if in.ExpiresIn, err = s.lifetimeOf(in.ExpiresIn); err != nil {
		return nil, err
	}
	var cert *CertificateInfo
	if in.Certificate != "" {
		pemText, info, err := CheckCertificate(in.Certificate, s.clock.Now())
		if err != nil {
			return nil, err
		}
		in.Certificate, cert = pemText, &info
	}
	d, err := s.auth.Authorize(ctx, in.User, ActionCreate, in.Scope, "")
	if err != nil {
		return nil, fmt.Errorf("authorize create: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, in.User, ActionCreate, in.Scope, "", in.Name, d, "not allowed"+because(d))
		return nil, userErr(ErrForbidden, "you may not request credentials in %s%s", in.Scope, because(d))
	}
	if err := s.checkPending(ctx, in.User, ActionCreate, in.Scope, "", in.Name, d); err != nil { // early, before BTP is asked; s.create checks again
		return nil, err
	}
	if err := s.checkName(ctx, in.Scope, in.Name); err != nil {
		var ue *UserError
		if errors.As(err, &ue) {
			s.refused(ctx, in.User, ActionCreate, in.Scope, "", in.Name, d, ue.Msg)
		}
		return nil, err
	}
	now := s.clock.Now().UTC()
	r := &Request{
		ID: id, Requester: in.User, Team: in.Team, Scope: in.Scope, Name: in.Name,
		ReadOnly: in.ReadOnly, Reason: in.Reason, State: StatePending, Version: 1,
		CreatedAt: now, UpdatedAt: now, Lifetime: in.ExpiresIn, Certificate: in.Certificate, CertificateInfo: cert,
		PendingUntil: now.Add(s.cfg.PendingTTL), NextReminder: now.Add(s.cfg.RemindAfter),
	}
	a := AuditEntry{RequestID: id, To: StatePending, Actor: in.User, At: now, Rule: d.Rule, PolicyHash: d.PolicyHash}
	if cert != nil {
		// The trail names the certificate the approvers were shown.
		a.Note = "certificate credential, SHA-256 " + cert.SHA256 + ", valid to " + cert.NotAfter.Format(time.RFC3339)
	}
	if err := s.create(ctx, r, a, s.nextDeadline(r)); err != nil {
		if errors.Is(err, ErrConflict) && in.Key != "" {
			// The same submission, run twice at once.
			if r, err := s.store.Get(ctx, id); err == nil {
				return s.resume(ctx, r)
			}
		}
		if errors.Is(err, ErrNameHeld) {
			return nil, userErr(ErrNameHeld, "another request has just reserved the name %q in %s; choose another --name", in.Name, in.Scope)
		}
		return nil, fmt.Errorf("store request: %w", err)
	}
	s.mirror(a)
	s.observe(r, a)
	s.logMove(ctx, a, r.Version)
	return s.post(ctx, r)
}

// resume finishes a submission that was made before: a request whose
// approval message was not posted yet gets it now.
func (s *Service) resume(ctx context.Context, r *Request) (*Request, error) {
	if r.State != StatePending || r.ApprovalTS != "" {
		return r, nil
	}
	if r, done, err := s.approveUnneeded(ctx, r); done || err != nil {
		return r, err
	}
	return s.post(ctx, r)
}

// post shows a stored request to its approvers.
func (s *Service) post(ctx context.Context, r *Request) (*Request, error) {
	id := r.ID
	q, err := s.quorum(ctx, r.action(), r.Scope, nil)
	if err != nil {
		return r, fmt.Errorf("quorum: %w", err)
	}
	ch, ts, err := s.notify.PostApproval(ctx, r, q)
	if err != nil {
		// Nobody can approve a request nobody sees: cancel it rather than let it rot.
		_, _ = s.transition(ctx, id, "system", func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StatePending {
				return nil, Effects{}, errNoop
			}
			cur.State, cur.Failure = StateFailed, "the approval message could not be posted"
			return &AuditEntry{Note: cur.Failure}, Effects{ClearDeadline: true, ReleaseName: true}, nil
		})
		return nil, fmt.Errorf("post approval message: %w", err)
	}
	posted := *r
	posted.ApprovalChannel, posted.ApprovalTS = ch, ts
	dms := s.notify.DMApprovers(ctx, &posted, q)
	return s.transitionFrom(ctx, id, r, "system", func(cur *Request) (*AuditEntry, Effects, error) {
		cur.ApprovalChannel, cur.ApprovalTS, cur.ApprovalDMs = ch, ts, dms
		note := "approval message posted in " + ch
		if len(dms) > 0 {
			note += fmt.Sprintf(", and sent to %d approvers' DMs", len(dms))
		}
		return &AuditEntry{Note: note}, Effects{}, nil
	})
}

// checkName refuses, at submit, a name that another request holds or that a
// credential at BTP already has: credbot never takes over, replaces or deletes
// a credential it did not create. When BTP cannot tell, the request goes on;
// the worker checks again right before it creates.
func (s *Service) checkName(ctx context.Context, scope Scope, name string) error {
	holder, err := s.store.NameHolder(ctx, scope, name)
	switch {
	case err == nil:
		return userErr(ErrNameHeld, "the name %q in %s is reserved by %s; choose another --name", name, scope, describeHolder(holder))
	case !errors.Is(err, ErrNotFound):
		return fmt.Errorf("look up the reservation of %q: %w", name, err)
	}
	_, err = s.issuer.Get(ctx, scope, name)
	switch {
	case err == nil:
		return userErr(ErrConflict, "an API credential named %q already exists in %s and credbot did not create it; choose another --name (credbot never takes over or replaces a credential it does not own)", name, scope)
	case errors.Is(err, ErrNotFound):
		return nil
	}
	s.log.WarnContext(ctx, "could not check the name at BTP; the worker checks it again before it creates",
		"scope", scope.String(), "name", name, "error", errMessage(err))
	return nil
}

// Outcome says what a click did, for the clicker.
type Outcome struct {
	Request *Request
	Message string // for the clicker, ephemeral
}

// Decide records an approval or a denial by user. The clicker is authorized here,
// at click time, from the id Slack vouched for — never from anything in the button.
func (s *Service) Decide(ctx context.Context, id, user string, approve bool) (Outcome, error) {
	return s.decide(ctx, id, user, approve, "")
}

// MaxDenyReason is the most characters a denier's reason may have.
const MaxDenyReason = 300

// CheckDenyReason validates a denier's reason: user text, bounded, without
// control characters but new lines and tabs.
func CheckDenyReason(reason string) error {
	switch {
	case utf8.RuneCountInString(reason) > MaxDenyReason:
		return userErr(ErrInvalid, "keep the reason to %d characters", MaxDenyReason)
	case !utf8.ValidString(reason) || strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }):
		return userErr(ErrInvalid, "the reason may not contain control characters")
	}
	return nil
}

// Deny records a denial with the denier's reason (optional, user text: it
// is kept on the request, shown to the requester and in the approval
// message, and written to the audit entry). The denier is authorized here,
// as Decide does, from the id Slack vouched for.
func (s *Service) Deny(ctx context.Context, id, user, reason string) (Outcome, error) {
	reason = strings.TrimSpace(reason)
	if err := CheckDenyReason(reason); err != nil {
		return Outcome{}, err
	}
	return s.decide(ctx, id, user, false, reason)
}

func (s *Service) decide(ctx context.Context, id, user string, approve bool, reason string) (Outcome, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return Outcome{}, s.notFound(err, id)
	}
	if user == r.Requester {
		s.refused(ctx, user, decideAction(approve), r.Scope, r.ID, r.Name, Decision{Rule: selfApprovalRule}, "the requester may not decide their own request")
		return Outcome{Request: r}, userErr(ErrForbidden, "you cannot approve or deny your own request")
	}
	d, err := s.auth.Authorize(ctx, user, ActionApprove, r.Scope, r.Requester)
	if err != nil {
		return Outcome{}, fmt.Errorf("authorize approve: %w", err)
	}
	if !d.Allowed {
		s.refused(ctx, user, decideAction(approve), r.Scope, r.ID, r.Name, d, "not an approver"+because(d))
		return Outcome{Request: r}, userErr(ErrForbidden, "you are not an approver for %s%s", r.Scope, because(d))
	}
	var q QuorumStatus
	var already bool
	r, err = s.transitionFrom(ctx, id, r, user, func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StatePending {
			return nil, Effects{}, userErr(ErrConflict, "this request is already %s", strings.ToLower(string(cur.State)))
		}
		a := &AuditEntry{Rule: d.Rule, PolicyHash: d.PolicyHash}
		if !approve {
			cur.State, cur.DecidedBy, cur.DenyReason = StateDenied, user, reason
			a.Reason = reason
			return a, Effects{ClearDeadline: true, ReleaseName: true}, nil
		}
		if slices.ContainsFunc(cur.Approvals, func(ap Approval) bool { return ap.User == user }) {
			already = true
			return nil, Effects{}, errNoop
		}
		cur.Approvals = append(cur.Approvals, Approval{User: user, At: s.clock.Now().UTC(), Rule: d.Rule})
		var err error
		q, err = s.quorum(ctx, cur.action(), cur.Scope, approvers(cur))
		if err != nil {
			return nil, Effects{}, err
		}
		if !q.Met {
			a.Note = fmt.Sprintf("approval recorded; %d of %d counted", q.Have, q.Need)
			if ok, why := q.Counts(user); !ok {
				a.Note += "; this one does not count: " + why
			}
			return a, Effects{}, nil
		}
		cur.State, cur.DecidedBy = StateApproved, user
		return a, Effects{EnqueueMint: true, ClearDeadline: true}, nil
	})
	if errors.Is(err, errNoop) && already {
		return Outcome{Request: r}, userErr(ErrConflict, "you have already approved this request")
	}
	if err != nil {
		return Outcome{Request: r}, err
	}
	if err := s.notify.UpdateApproval(ctx, r, q); err != nil {
		s.log.WarnContext(ctx, "update approval message", "request_id", id, "error", err)
	}
	switch r.State {
	case StateDenied:
		if err := s.notify.Denied(ctx, r); err != nil {
			s.log.WarnContext(ctx, "tell requester", "request_id", r.ID, "error", err)
		}
		return Outcome{Request: r, Message: "Denied."}, nil
	case StateApproved:
		if r.Assignment != nil {
			return Outcome{Request: r, Message: "Approved. The role collection is being assigned."}, nil
		}
		return Outcome{Request: r, Message: "Approved. The credential is being created."}, nil
	default:
		msg := fmt.Sprintf("Approval recorded (%d of %d counted).", q.Have, q.Need)
		if ok, why := q.Counts(user); !ok {
			msg = "Approval recorded, but it does not count toward this request's rule: " + why + "."
		}
		if len(q.Waiting) > 0 {
			msg += " It still needs " + strings.Join(q.Waiting, " and ") + "."
		}
		return Outcome{Request: r, Message: msg}, nil
	}
}

// Mint runs one mint job: APPROVED → MINTING → ISSUED (or FAILED). It is safe to
// run twice for the same request, and safe to run after a worker died mid-way.
// It returns done=false when the job should stay queued for a later retry.
func (s *Service) Mint(ctx context.Context, job MintJob) (done bool, err error) {
	r, err := s.store.Get(ctx, job.RequestID)
	if errors.Is(err, ErrNotFound) {
		return true, nil // nothing to do for an unknown id
	}
	if err != nil {
		return false, err
	}
	if r.Assignment != nil {
		return s.assign(ctx, r, job)
	}
	switch r.State {
	case StateApproved:
		claimed, err := s.transitionFrom(ctx, r.ID, r, "minter", func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StateApproved {
				return nil, Effects{}, errNoop
			}
			cur.State = StateMinting
			return &AuditEntry{}, Effects{}, nil
		})
		if errors.Is(err, errNoop) {
			return true, nil // another worker has it
		}
		if err != nil {
			return false, err
		}
		r = claimed
		call(s.cfg.Hooks.AfterClaim, r.ID)
	case StateMinting:
		// A worker died (or gave up) between claiming and finishing. If it had
		// seen the name free, whatever is under the name now is what it created,
		// with a secret nobody has: remove it before creating afresh. If it had
		// not, nothing under the name is ours, and the check below decides.
		if !r.NameFreeAt.IsZero() {
			if err := s.issuer.Delete(ctx, r.Scope, r.Name); err != nil && !errors.Is(err, ErrNotFound) {
				return s.retryOrFail(ctx, r, job, err)
			}
		}
	case StateIssued:
		if r.DMTS == "" && !r.Revoking && r.RevokedBy == "" {
			// A worker died after sealing, before the DM: offer the reveal now.
			// (If it died after posting but before recording, the requester gets
			// the notice twice; the reveal still works once.)
			return true, s.offer(ctx, r)
		}
		return true, nil
	default:
		return true, nil // already past minting
	}
	if c := r.CertificateInfo; c != nil && !s.clock.Now().Before(c.NotAfter) {
		// It was checked at submit; approval may have taken longer than
		// the certificate lives. BTP would make a credential nobody can use.
		return s.retryOrFail(ctx, r, job, userErr(errCertExpired, "the certificate expired (%s) while the request waited for approval; nothing was created. Ask again with a new certificate",
			c.NotAfter.Format(time.RFC3339)))
	}
	if r.NameFreeAt.IsZero() {
		claimed, err := s.claimName(ctx, r)
		switch {
		case errors.Is(err, errNoop):
			return false, nil // another worker moved it on; the job comes back if anything is left to do
		case claimed == nil:
			// The store failed (the request is as it was): nothing was
			// created, and the job comes back to try again.
			return false, err
		case err != nil:
			return s.retryOrFail(ctx, r, job, err)
		}
		r = claimed
	}
	issued, err := s.issuer.Create(ctx, CredentialSpec{Scope: r.Scope, Name: r.Name, ReadOnly: r.ReadOnly, Certificate: r.Certificate, OwnsName: true})
	if err != nil {
		return s.retryOrFail(ctx, r, job, err)
	}
	call(s.cfg.Hooks.AfterCreate, r.ID)
	sealed, err := s.sealer.Seal(r.ID, issued.Secret)
	if err != nil {
		return false, s.undo(ctx, r, issued, fmt.Errorf("seal: %w", err))
	}
	cred := issued.Credential
	window := s.cfg.ClaimWindow
	minting := r
	r, err = s.transitionFrom(ctx, r.ID, r, "minter", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StateMinting {
			return nil, Effects{}, errNoop
		}
		now := s.clock.Now().UTC()
		cur.State, cur.Credential = StateIssued, &cred
		cur.ClaimUntil, cur.ExpiresAt = now.Add(window), now.Add(cur.Lifetime)
		return &AuditEntry{Note: "credential created at BTP"}, Effects{
			SealedSecret: sealed, SecretTTL: window, Deadline: s.nextDeadline(cur),
		}, nil
	})
	if err != nil {
		// We hold a secret we cannot store: it must not live on at BTP.
		return false, s.undo(ctx, minting, issued, err)
	}
	call(s.cfg.Hooks.AfterSeal, r.ID)
	if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{Met: true}); err != nil {
		s.log.WarnContext(ctx, "update approval message", "request_id", r.ID, "error", err)
	}
	s.updateAlerts(ctx, r) // a break-glass's alert now shows when it expires
	if r.RevokedBy != "" {
		// A reviewer revoked it while it was being created: delete it
		// before anyone is offered the secret.
		return true, s.finishRevoke(ctx, r)
	}
	return true, s.offer(ctx, r)
}

// errNameTaken fails a request whose name a credential at BTP has that this
// request did not create.
var errNameTaken = errors.New("name taken at BTP")

// errCertExpired fails a certificate request whose certificate expired
// before it was minted.
var errCertExpired = errors.New("certificate expired before minting")

// claimName looks the name up at BTP right before the first create and records
// that it was free. A credential already there is someone else's: the request
// fails and nothing is deleted.
func (s *Service) claimName(ctx context.Context, r *Request) (*Request, error) {
	_, err := s.issuer.Get(ctx, r.Scope, r.Name)
	switch {
	case err == nil:
		return r, userErr(errNameTaken, "an API credential named %q already exists in %s and credbot did not create it; nothing was deleted. Ask again with another --name", r.Name, r.Scope)
	case !errors.Is(err, ErrNotFound):
		return r, fmt.Errorf("check the name at BTP: %w", err)
	}
	return s.transitionFrom(ctx, r.ID, r, "minter", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StateMinting || !cur.NameFreeAt.IsZero() {
			return nil, Effects{}, errNoop
		}
		cur.NameFreeAt = s.clock.Now().UTC()
		return &AuditEntry{Note: "name seen free at BTP"}, Effects{}, nil
	})
}

// offer DMs the requester the Reveal button and records where the DM lives.
func (s *Service) offer(ctx context.Context, r *Request) error {
	ch, ts, err := s.notify.OfferReveal(ctx, r, r.ClaimUntil.Sub(s.clock.Now()).Round(time.Second))
	if err != nil {
		// The claim-window deadline revokes it if the requester never gets the DM.
		s.log.ErrorContext(ctx, "offer reveal", "request_id", r.ID, "error", err)
		return nil
	}
	cur, err := s.transitionFrom(ctx, r.ID, r, "system", func(cur *Request) (*AuditEntry, Effects, error) {
		cur.DMChannel, cur.DMTS = ch, ts
		return &AuditEntry{Note: "reveal offered"}, Effects{}, nil
	})
	if err != nil {
		s.log.WarnContext(ctx, "record DM", "request_id", r.ID, "error", err)
		return nil
	}
	if cur.State == StateDelivered {
		// Revealed before the DM was recorded (a quick click): the reveal
		// could not rewrite the notice, so do it now.
		if err := s.notify.Revealed(ctx, cur); err != nil {
			s.log.WarnContext(ctx, "update DM notice", "request_id", r.ID, "error", err)
		}
	}
	return nil
}

// undo deletes a credential whose secret could not be kept, so that no orphan
// credential with an unknown secret stays live at BTP.
func (s *Service) undo(ctx context.Context, r *Request, issued Issued, cause error) error {
	if err := s.issuer.Delete(ctx, issued.Credential.Scope, issued.Credential.Name); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.ErrorContext(ctx, "delete unkept credential", "request_id", r.ID, "name", issued.Credential.Name, "error", err)
	}
	return cause
}

// retryOrFail leaves a mint job queued after a temporary failure (done is
// false), or fails the request for good and tells the requester.
func (s *Service) retryOrFail(ctx context.Context, r *Request, job MintJob, cause error) (done bool, err error) {
	var t Temporary
	temporary := errors.As(cause, &t) && t.Temporary()
	if temporary && job.Deliveries < s.cfg.MaxMintDeliveries && !errors.Is(cause, errNameTaken) {
		return false, cause // stays queued; redelivered later
	}
	var msg string
	switch {
	case errors.Is(cause, errNameTaken), errors.Is(cause, errCertExpired):
		msg = errMessage(cause)
	case errors.Is(cause, ErrUnverified):
		// The Issuer deleted what it created: it was this request's own (a
		// create that succeeded, under a name this request saw free and holds).
		msg = "BTP created the credential, but it could not get a token with it, so credbot deleted it at BTP and handed nothing out (" +
			errMessage(cause) + "). Please ask again; if it fails again, tell the credbot operators: BTP's token endpoint for this scope refuses new credentials"
	case errors.Is(cause, ErrConflict):
		msg = fmt.Sprintf("an API credential named %q appeared at BTP after credbot checked the name, so credbot did not create it; nothing was deleted. Ask again with another --name", r.Name)
	case temporary:
		msg = "BTP could not be reached to create the credential (" + errMessage(cause) + "); please ask again later"
	default:
		msg = "BTP refused to create the credential: " + errMessage(cause)
	}
	if temporary && !r.NameFreeAt.IsZero() {
		// The outcome of our last create may be unknown: what is under the
		// name is ours (we saw it free and hold it), and must not live on
		// with a secret nobody has.
		if err := s.issuer.Delete(ctx, r.Scope, r.Name); err != nil && !errors.Is(err, ErrNotFound) {
			s.log.ErrorContext(ctx, "could not delete what a failed create may have left at BTP; delete it by hand",
				"request_id", r.ID, "scope", r.Scope.String(), "name", r.Name, "error", errMessage(err))
		}
	}
	return s.failMint(ctx, r.ID, msg, func(r *Request) string {
		return fmt.Sprintf("Your request %s for %q failed: %s", r.ID, r.Name, msg)
	})
}

// failMint ends an approved or minting request FAILED with msg, as the mint
// worker: the name is released, the approval message and any break-glass
// alert updated, and the requester told what told says. done is false only
// when the transition could not be written (the job is tried again).
func (s *Service) failMint(ctx context.Context, id, msg string, told func(*Request) string) (done bool, err error) {
	r, err := s.transition(ctx, id, "minter", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StateMinting && cur.State != StateApproved {
			return nil, Effects{}, errNoop
		}
		cur.State, cur.Failure = StateFailed, msg
		return &AuditEntry{Note: msg}, Effects{ReleaseName: true}, nil
	})
	if errors.Is(err, errNoop) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{Met: true}); err != nil {
		s.log.WarnContext(ctx, "update approval message", "request_id", r.ID, "error", err)
	}
	s.updateAlerts(ctx, r)
	s.tell(ctx, r, told(r))
	return true, nil
}

// Revelation is what the requester sees once.
type Revelation struct {
	Request *Request
	Secret  Secret
}

// Reveal hands the one-time secret to the requester's own click, once. The
// clicker is re-authorized: still the requester, still allowed to request.
func (s *Service) Reveal(ctx context.Context, id, user string) (Revelation, error) {
	rv, err := s.reveal(ctx, id, user)
	if s.cfg.Observer != nil {
		s.cfg.Observer.Revealed(revealOutcome(err))
	}
	return rv, err
}

func (s *Service) reveal(ctx context.Context, id, user string) (Revelation, error) {
	for range s.maxRetry {
		r, err := s.store.Get(ctx, id)
		if err != nil {
			return Revelation{}, s.notFound(err, id)
		}
		if user != r.Requester {
			s.refused(ctx, user, "reveal", r.Scope, r.ID, r.Name, Decision{Rule: ownerOnlyRule}, "not the requester")
			return Revelation{}, userErr(ErrForbidden, "only the requester can reveal this credential")
		}
		switch {
		case r.State == StateIssued && (r.Revoking || !s.clock.Now().Before(r.ClaimUntil)):
			return Revelation{}, userErr(ErrAlreadyTaken, "the claim window is over; the credential is being deleted. Please ask again")
		case r.RevokedBy != "":
			return Revelation{}, userErr(ErrAlreadyTaken, "a reviewer (<@%s>) revoked this break-glass; the credential is being deleted", r.RevokedBy)
		case r.State == StateIssued:
		case r.State == StateDelivered:
			return Revelation{}, userErr(ErrAlreadyTaken, "this secret was already revealed; credbot keeps no copy")
		default:
			return Revelation{}, userErr(ErrAlreadyTaken, "there is nothing to reveal: the request is %s", strings.ToLower(string(r.State)))
		}
		act := r.action() // create, or rotate for a rotation
		if r.Breakglass {
			act = ActionBreakglass // a break-glass needs no create permission, and is held by breakglass
		}
		d, err := s.auth.Authorize(ctx, user, act, r.Scope, "")
		if err != nil {
			return Revelation{}, fmt.Errorf("authorize reveal: %w", err)
		}
		if !d.Allowed {
			s.refused(ctx, user, "reveal", r.Scope, r.ID, r.Name, d, "no longer allowed to hold credentials here"+because(d))
			return Revelation{}, userErr(ErrForbidden, "you are no longer allowed to hold credentials in %s%s", r.Scope, because(d))
		}
		next := *r
		next.State, next.UpdatedAt = StateDelivered, s.clock.Now().UTC()
		if next.Rotates != "" && next.GraceUntil.IsZero() {
			// The old credential's end starts with this reveal, in this step.
			next.GraceUntil = s.graceFor(next.UpdatedAt)
		}
		a := AuditEntry{RequestID: id, From: StateIssued, To: StateDelivered, Actor: user, At: next.UpdatedAt, Rule: d.Rule, PolicyHash: d.PolicyHash}
		sealed, err := s.store.Take(ctx, &next, r.Version, a, s.nextDeadline(&next))
		if errors.Is(err, ErrConflict) {
			continue // the request moved on (e.g. its DM was recorded): look again
		}
		if errors.Is(err, ErrAlreadyTaken) {
			return Revelation{}, userErr(ErrAlreadyTaken, "this secret has expired; ask again")
		}
		if err != nil {
			return Revelation{}, err
		}
		s.mirror(a)
		s.observe(&next, a)
		s.logMove(ctx, a, r.Version+1)
		sec, err := s.sealer.Open(id, sealed)
		if err != nil {
			// The sealed copy is gone and nobody can read it: a credential
			// whose secret nobody holds must not live on at BTP.
			s.log.ErrorContext(ctx, "a sealed secret does not open on this replica; deleting the credential at BTP. "+
				"Check that every replica has the same CREDBOT_SECRET_KEY, listing previous keys after the current one",
				"request_id", id, "error", err)
			if uerr := s.Undeliverable(ctx, id, err); uerr != nil {
				s.log.ErrorContext(ctx, "revoke unopenable secret", "request_id", id, "error", uerr)
			}
			return Revelation{}, userErr(errUnsealable, "credbot could not unseal this secret, so the credential was deleted at BTP; please ask again")
		}
		next.Version = r.Version + 1
		if err := s.notify.Revealed(ctx, &next); err != nil {
			s.log.WarnContext(ctx, "update DM notice", "request_id", id, "error", err)
		}
		return Revelation{Request: &next, Secret: sec}, nil
	}
	return Revelation{}, fmt.Errorf("reveal %s: %w", id, ErrConflict)
}

// Undeliverable is called when a revealed secret could not be shown (the reply to
// Slack failed). The secret is gone from the store and unseen, so the credential
// must not live on: it is deleted at BTP and the requester told to ask again.
func (s *Service) Undeliverable(ctx context.Context, id string, cause error) error {
	s.log.WarnContext(ctx, "a revealed secret could not be shown; deleting the credential", "request_id", id, "error", errMessage(cause))
	r, err := s.retire(ctx, id, "system", Decision{}, StateRevoked, "the secret could not be shown to the requester", func(cur *Request) bool {
		return cur.State == StateDelivered
	})
	if err != nil {
		return err
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.Revealed("undeliverable")
	}
	if err := s.notify.Revealed(ctx, r); err != nil { // the notice must not say it was revealed
		s.log.WarnContext(ctx, "update DM notice", "request_id", id, "error", err)
	}
	if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{Met: true}); err != nil { // nor the approval message that it was issued
		s.log.WarnContext(ctx, "update approval message", "request_id", id, "error", err)
	}
	s.tell(ctx, r, fmt.Sprintf("The secret of %q could not be shown to you, so the credential was deleted. Please ask again.", r.Name))
	return nil
}

// DeleteOwn lets the owner delete their credential before its lifetime ends
// (e.g. from the expiry warning, once they have switched to a new one).
func (s *Service) DeleteOwn(ctx context.Context, id, user string) (*Request, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, s.notFound(err, id)
	}
	if r.Requester != user {
		s.refused(ctx, user, ActionDelete, r.Scope, r.ID, r.Name, Decision{Rule: ownerOnlyRule}, "not the owner")
		return nil, userErr(ErrForbidden, "only the owner can delete this credential this way")
	}
	r, err = s.retire(ctx, id, user, s.ownerDelete(), StateDeleted, "deleted by its owner", func(cur *Request) bool {
		return cur.State == StateDelivered
	})
	if errors.Is(err, errNoop) {
		return r, userErr(ErrConflict, "%q is not a live credential any more (%s)", r.Name, strings.ToLower(string(r.State)))
	}
	return r, err
}

// Cancel withdraws a pending request; only its requester may.
func (s *Service) Cancel(ctx context.Context, id, user string) (*Request, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, s.notFound(err, id)
	}
	if r.Requester != user {
		s.refused(ctx, user, "cancel", r.Scope, r.ID, r.Name, Decision{Rule: ownerOnlyRule}, "not the requester")
		return nil, userErr(ErrForbidden, "only the requester can cancel request %s", id)
	}
	r, err = s.transition(ctx, id, user, func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StatePending {
			return nil, Effects{}, userErr(ErrConflict, "request %s is already %s", id, strings.ToLower(string(cur.State)))
		}
		cur.State, cur.DecidedBy = StateCancelled, user
		return &AuditEntry{Rule: requesterCancelRule, PolicyHash: s.policyHash()}, Effects{ClearDeadline: true, ReleaseName: true}, nil
	})
	if err != nil {
		return r, err
	}
	if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{}); err != nil {
		s.log.WarnContext(ctx, "update approval message", "request_id", id, "error", err)
	}
	return r, nil
}

// Status returns a request for display, to its requester or an approver.
func (s *Service) Status(ctx context.Context, id string) (*Request, error) {
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, s.notFound(err, id)
	}
	return r, nil
}

// RunMinter consumes the mint queue until ctx is done. The jobs of a replica
// whose liveness lease lapsed are taken over at once; jobs idle longer than
// rescueAfter (a live worker that is stuck) are claimed again. It blocks on
// the queue a quarter second at a time, so that it notices ctx promptly, and
// finishes the job in hand when ctx ends.
func (s *Service) RunMinter(ctx context.Context, consumer string, rescueAfter time.Duration) {
	for ctx.Err() == nil {
		jobs, err := s.store.ClaimMintJobs(ctx, consumer, 250*time.Millisecond, rescueAfter)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "claim mint jobs", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		for _, j := range jobs {
			// A job must end well before another worker may rescue it: a slow
			// worker and its rescuer minting the same name at once could each
			// delete what the other created.
			// A job in hand runs to its end when ctx ends (a drain): cutting
			// a create short would only make its outcome unknown.
			jobTimeout := time.Minute
			if rescueAfter > 0 {
				jobTimeout = rescueAfter / 2
			}
			jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobTimeout)
			jctx = logctx.With(jctx, "request_id", j.RequestID, "mint_job", j.StreamID)
			done, err := s.Mint(jctx, j)
			cancel()
			if err != nil {
				s.log.WarnContext(ctx, "mint", "request_id", j.RequestID, "delivery", j.Deliveries, "error", errMessage(err))
			}
			if done {
				if err := s.store.AckMintJob(ctx, j); err != nil {
					s.log.WarnContext(ctx, "ack mint job", "request_id", j.RequestID, "error", err)
				}
			}
		}
	}
}

// SweepDeadlines handles every request whose deadline has passed: it expires
// or reminds pending requests, revokes unclaimed secrets, warns owners and
// deletes expired credentials. Any replica may run it; the compare-and-set lets
// exactly one win each transition.
func (s *Service) SweepDeadlines(ctx context.Context) error {
	due, err := s.store.DueDeadlines(ctx, s.clock.Now(), 100)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range due {
		if err := s.due(ctx, d); err != nil && !errors.Is(err, errNoop) {
			s.log.WarnContext(ctx, "deadline", "request_id", d.ID, "error", errMessage(err))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) due(ctx context.Context, d Due) error {
	id := d.ID
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	switch {
	case r.Assignment != nil && r.State == StateAssigned:
		return s.assignmentDue(ctx, r)
	case r.Breakglass && r.RevokedBy != "" && (r.State == StateIssued || r.State == StateDelivered):
		return s.finishRevoke(ctx, r)
	case s.breakglassDue(r, now):
		return s.reviewDue(ctx, r)
	case r.State == StatePending && !now.Before(r.PendingUntil):
		r, err := s.transition(ctx, id, "deadline", func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StatePending || s.clock.Now().Before(cur.PendingUntil) {
				return nil, Effects{}, errNoop
			}
			cur.State = StateExpired
			return &AuditEntry{Note: "no decision in time"}, Effects{ClearDeadline: true, ReleaseName: true}, nil
		})
		if err != nil {
			return err
		}
		if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{}); err != nil {
			s.log.WarnContext(ctx, "update approval message", "request_id", id, "error", err)
		}
		s.tell(ctx, r, fmt.Sprintf("Your request %s for %s expired without a decision. You can ask again.", r.ID, r.Subject()))
	case r.State == StatePending && r.action() != ActionCreate && r.ApprovalTS == "":
		// A rotation whose submitter died before approving it (its quorum
		// needs nobody) or before posting it: finish that now.
		_, err := s.resume(ctx, r)
		return err
	case r.State == StatePending:
		return s.remind(ctx, r)
	case r.State == StateIssued && (r.Revoking || !now.Before(r.ClaimUntil)):
		r, err := s.retire(ctx, id, "deadline", Decision{}, StateRevoked, "the secret was not revealed within the claim window", func(cur *Request) bool {
			return cur.State == StateIssued && (cur.Revoking || !s.clock.Now().Before(cur.ClaimUntil))
		})
		if err != nil {
			return err
		}
		if err := s.notify.UpdateApproval(ctx, r, QuorumStatus{Met: true}); err != nil {
			s.log.WarnContext(ctx, "update approval message", "request_id", id, "error", err)
		}
		s.updateAlerts(ctx, r)
		s.tell(ctx, r, fmt.Sprintf("The secret of %q was not revealed within %s, so the credential was deleted. You can ask again.", r.Name, humanDuration(s.cfg.ClaimWindow)))
	case r.State == StateDelivered && r.Revoking && r.RevokeWhy != "":
		// A worker died while deleting it (an owner's, an admin's or a
		// rotation's delete): finish, for the same reason.
		why := r.RevokeWhy
		r, err := s.retire(ctx, id, "deadline", Decision{}, StateDeleted, why, func(cur *Request) bool {
			return cur.State == StateDelivered && cur.Revoking
		})
		if err != nil {
			return err
		}
		s.tell(ctx, r, fmt.Sprintf("Your API credential %q in %s was deleted at BTP (%s).", r.Name, r.Scope, why))
	case r.State == StateDelivered && r.Rotates != "" && !r.RotationDone && !r.GraceUntil.IsZero() && !now.Before(r.GraceUntil):
		return s.finishRotation(ctx, r, "deadline", Decision{})
	case r.State == StateDelivered && (r.Revoking || !now.Before(r.ExpiresAt)):
		r, err := s.retire(ctx, id, "deadline", Decision{}, StateDeleted, "the credential reached the end of its lifetime", func(cur *Request) bool {
			return cur.State == StateDelivered && (cur.Revoking || !s.clock.Now().Before(cur.ExpiresAt))
		})
		if err != nil {
			return err
		}
		s.updateAlerts(ctx, r)
		s.tell(ctx, r, fmt.Sprintf("Your API credential %q in %s reached the end of its lifetime and was deleted at BTP.", r.Name, r.Scope))
	case r.State == StateDelivered && !r.ExpiryWarned && !now.Before(s.warnAt(r)):
		r, err := s.transition(ctx, id, "deadline", func(cur *Request) (*AuditEntry, Effects, error) {
			if cur.State != StateDelivered || cur.ExpiryWarned {
				return nil, Effects{}, errNoop
			}
			cur.ExpiryWarned = true
			return &AuditEntry{Note: "owner warned of expiry"}, Effects{Deadline: s.nextDeadline(cur)}, nil
		})
		if err != nil {
			return err
		}
		if err := s.notify.WarnExpiry(ctx, r); err != nil {
			s.log.WarnContext(ctx, "warn owner of expiry", "request_id", id, "error", err)
		}
	case s.nextDeadline(r).IsZero():
		// Nothing is ever due in this state: the entry outlived a transition.
		return s.store.DropDeadline(ctx, d.ID, d.At)
	}
	return nil
}

// remind nudges the approvers of a pending request, backing off, and escalates
// after EscalateAfter reminders.
func (s *Service) remind(ctx context.Context, r *Request) error {
	var escalate bool
	r, err := s.transition(ctx, r.ID, "deadline", func(cur *Request) (*AuditEntry, Effects, error) {
		if cur.State != StatePending || s.clock.Now().Before(cur.NextReminder) {
			return nil, Effects{}, errNoop
		}
		cur.Reminders++
		escalate = cur.Reminders >= s.cfg.EscalateAfter
		cur.NextReminder = s.clock.Now().Add(s.cfg.RemindAfter << min(cur.Reminders, 10))
		return &AuditEntry{Note: fmt.Sprintf("reminder %d", cur.Reminders)}, Effects{Deadline: s.nextDeadline(cur)}, nil
	})
	if err != nil {
		return err
	}
	q, err := s.quorum(ctx, r.action(), r.Scope, approvers(r))
	if err != nil {
		return err
	}
	return s.notify.Remind(ctx, r, q, escalate)
}

// retire deletes a request's credential at BTP and moves it to a final state,
// under a lease: first mark it Revoking (which stops any reveal) and push its
// deadline out, then delete at BTP, then finish. A worker that dies in between
// is replaced when the pushed-out deadline comes due.
//
// d is the decision that asked for it (an admin's or the owner's delete); its
// rule and policy hash go into both audit entries. Deadlines pass none.
func (s *Service) retire(ctx context.Context, id, actor string, d Decision, to State, why string, when func(*Request) bool) (*Request, error) {
	r, err := s.transition(ctx, id, actor, func(cur *Request) (*AuditEntry, Effects, error) {
		now := s.clock.Now()
		if !when(cur) || cur.Credential == nil || s.leaseHeld(ctx, cur, now) {
			return nil, Effects{}, errNoop // not due, or a live worker holds the lease
		}
		if cur.Revoking && cur.RevokeWhy != "" {
			why = cur.RevokeWhy // finish what the worker that died started, for its reason
		}
		note := "deleting at BTP: " + why
		if cur.Revoking {
			note = fmt.Sprintf("taking over the deletion from replica %s: %s", cur.LeaseHolder, why)
		}
		cur.Revoking, cur.LeaseUntil, cur.LeaseHolder, cur.RevokeWhy = true, now.Add(s.cfg.RevokeLease), s.cfg.Replica, why
		// Look again soon: if this replica dies, another takes over once its
		// liveness lease lapses, without waiting for RevokeLease.
		recheck := now.Add(revokeRecheck)
		if cur.LeaseUntil.Before(recheck) {
			recheck = cur.LeaseUntil
		}
		return &AuditEntry{Note: note, Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{Deadline: recheck, DropSecret: true}, nil
	})
	if err != nil {
		return r, err
	}
	call(s.cfg.Hooks.AfterLease, id)
	if err := s.issuer.Delete(ctx, r.Credential.Scope, r.Credential.Name); err != nil && !errors.Is(err, ErrNotFound) {
		return r, fmt.Errorf("delete %s at BTP (retried when the lease ends): %w", r.Credential.Name, err)
	}
	return s.transition(ctx, id, actor, func(cur *Request) (*AuditEntry, Effects, error) {
		if !cur.Revoking {
			return nil, Effects{}, errNoop
		}
		cur.Revoking, cur.LeaseUntil, cur.LeaseHolder, cur.RevokeWhy, cur.State = false, time.Time{}, "", "", to
		if to == StateRevoked {
			cur.Failure = why
		}
		return &AuditEntry{Note: why, Rule: d.Rule, PolicyHash: d.PolicyHash}, Effects{ClearDeadline: true, DropSecret: true, ReleaseName: true}, nil
	})
}

// revokeRecheck is how soon a revocation in progress is looked at again, to
// take it over if the replica that holds its lease died.
const revokeRecheck = 5 * time.Second

// leaseHeld reports whether a live worker holds r's revocation lease: it was
// taken, has not run out, and the replica that took it is alive (a lease from
// before leases named their replica counts as held until it runs out).
func (s *Service) leaseHeld(ctx context.Context, r *Request, now time.Time) bool {
	if !r.Revoking || !now.Before(r.LeaseUntil) {
		return false
	}
	if r.LeaseHolder == "" || r.LeaseHolder == s.cfg.Replica {
		return true
	}
	alive, err := s.store.Alive(ctx, r.LeaseHolder)
	if err != nil {
		s.log.WarnContext(ctx, "could not check the liveness of the replica that holds a revocation lease; leaving it", "request_id", r.ID, "replica", r.LeaseHolder, "error", err)
		return true
	}
	return alive
}

// nextDeadline is the earliest moment something is due for r in its state, or
// zero when nothing is. A live break-glass also comes due for its alert and
// its review (breakglass.go), whichever is earlier.
func (s *Service) nextDeadline(r *Request) time.Time {
	at := s.stateDeadline(r)
	if bg := s.breakglassDeadline(r); !bg.IsZero() && (at.IsZero() || bg.Before(at)) {
		at = bg
	}
	return at
}

func (s *Service) stateDeadline(r *Request) time.Time {
	switch r.State {
	case StatePending:
		if !r.NextReminder.IsZero() && r.NextReminder.Before(r.PendingUntil) {
			return r.NextReminder
		}
		return r.PendingUntil
	case StateIssued:
		return r.ClaimUntil
	case StateAssigned:
		return s.assignmentDeadline(r)
	case StateDelivered:
		var next time.Time
		switch {
		case r.ExpiresAt.IsZero():
		case !r.ExpiryWarned:
			next = s.warnAt(r)
		default:
			next = r.ExpiresAt
		}
		if r.Rotates != "" && !r.RotationDone && !r.GraceUntil.IsZero() && (next.IsZero() || r.GraceUntil.Before(next)) {
			next = r.GraceUntil // the credential this one replaces is deleted then
		}
		return next
	}
	return time.Time{}
}

// warnAt is when the owner of a delivered credential is warned of its expiry.
func (s *Service) warnAt(r *Request) time.Time {
	lead := min(s.cfg.ExpiryWarning, r.Lifetime/10)
	return r.ExpiresAt.Add(-lead)
}

// errNoop aborts a transition that has nothing to do.
var errNoop = errors.New("nothing to do")

// transition is the one compare-and-set loop: read, let change decide and mutate,
// write only if nobody else wrote in between, retry on conflict.
func (s *Service) transition(ctx context.Context, id, actor string, change func(cur *Request) (*AuditEntry, Effects, error)) (*Request, error) {
	return s.transitionFrom(ctx, id, nil, actor, change)
}

// transitionFrom is transition starting from known, the record of id as the
// caller read it (or a transition returned it) a moment ago, which spares the
// first read; known itself is left as it was. The compare-and-set makes this
// safe: if the record moved on since, the write fails and the record is read
// afresh, as for any conflict. An error change gives on known stands only if
// it gives it on a fresh read too.
func (s *Service) transitionFrom(ctx context.Context, id string, known *Request, actor string, change func(cur *Request) (*AuditEntry, Effects, error)) (*Request, error) {
	if known != nil && known.ID != id {
		known = nil
	}
	for try := 0; try < s.maxRetry; try++ {
		cur, fromKnown := known, known != nil
		known = nil
		if fromKnown {
			cur = cur.Clone()
		} else {
			var err error
			if cur, err = s.store.Get(ctx, id); err != nil {
				return nil, err
			}
		}
		from, fromVersion := cur.State, cur.Version
		a, fx, err := change(cur)
		if err != nil {
			if fromKnown {
				try-- // look again before saying no
				continue
			}
			return cur, err
		}
		now := s.clock.Now().UTC()
		cur.UpdatedAt = now
		a.RequestID, a.From, a.To, a.At = id, from, cur.State, now
		if a.Actor == "" {
			a.Actor = actor
		}
		if cur.State.Terminal() && !from.Terminal() {
			cur.EndedAt, cur.EndedBy, cur.EndNote = now, a.Actor, a.Note
		}
		err = s.store.Apply(ctx, cur, from, fromVersion, *a, fx)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.mirror(*a)
		cur.Version = fromVersion + 1
		s.observe(cur, *a)
		s.logMove(ctx, *a, cur.Version)
		return cur, nil
	}
	return nil, fmt.Errorf("request %s: %w (gave up after %d tries)", id, ErrConflict, s.maxRetry)
}

func (s *Service) mirror(a AuditEntry) {
	if s.cfg.AuditMirror != nil {
		s.cfg.AuditMirror(a)
	}
}

func (s *Service) tell(ctx context.Context, r *Request, text string) {
	if err := s.notify.Tell(ctx, r, text); err != nil {
		s.log.WarnContext(ctx, "tell requester", "request_id", r.ID, "error", err)
	}
}

func (s *Service) notFound(err error, id string) error {
	if errors.Is(err, ErrNotFound) {
		return userErr(ErrNotFound, "there is no request %q", id)
	}
	return err
}

func approvers(r *Request) []string {
	out := make([]string, 0, len(r.Approvals))
	for _, a := range r.Approvals {
		out = append(out, a.User)
	}
	return out
}

func because(d Decision) string {
	if d.Reason != "" {
		return " (" + d.Reason + ")"
	}
	return ""
}

// errMessage is an error's text for a person; errors here never carry secrets.
func errMessage(err error) string {
	var ue *UserError
	if errors.As(err, &ue) {
		return ue.Msg
	}
	return err.Error()
}

// idFor derives a request id from a submission's key, so that submitting it
// twice finds the same request.
func idFor(user, key string) string {
	sum := sha256.Sum256([]byte("credbot submission\x00" + user + "\x00" + key))
	return "r" + hex.EncodeToString(sum[:6])
}

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "r" + hex.EncodeToString(b)
}

// humanDuration prints durations as people write them: 90d, 15m, 36h.
func humanDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// lifetimeOf checks an --expires-in: 0 is the longest allowed
// (CREDBOT_MAX_LIFETIME), and anything else lies between 1h and that.
func (s *Service) lifetimeOf(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, userErr(ErrInvalid, "--expires-in must be positive")
	case d == 0:
		return s.cfg.MaxLifetime, nil
	case d > s.cfg.MaxLifetime:
		return 0, userErr(ErrInvalid, "--expires-in may be at most %s", humanDuration(s.cfg.MaxLifetime))
	case d < time.Hour:
		return 0, userErr(ErrInvalid, "--expires-in must be at least 1h")
	}
	return d, nil
}
