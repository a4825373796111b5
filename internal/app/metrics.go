package app

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is one replica's Prometheus registry (no global state). Labels are
// only ever state names, operations, methods and outcomes — never a request,
// a user or a credential name.
//
//	credbot_transitions_total{to}                      lifecycle transitions written by this replica
//	credbot_btp_requests_total{op,outcome}             round trips to the btp CLI server
//	credbot_btp_request_duration_seconds{op}
//	credbot_slack_requests_total{method,outcome}       Slack Web API calls (rate_limited: a 429)
//	credbot_slack_request_duration_seconds{method}
//	credbot_queue_depth{queue}                         inbox / mint entries not yet done
//	credbot_queue_oldest_age_seconds{queue}            age of the oldest of them
//	credbot_pending_requests                           requests waiting for approval
//	credbot_unmanaged_credentials{scope}               credentials at BTP credbot did not issue (inventory.go)
//	credbot_time_to_approve_seconds                    submitted → approved
//	credbot_time_to_deliver_seconds                    submitted → secret shown
//	credbot_reveals_total{outcome}                     shown, refused, already_taken, unsealable, undeliverable, …
//	credbot_socket_connected                           Socket Mode connection up (1) or not (0)
//	credbot_dependency_up{dependency}                  see health.go
//	credbot_build_info{version,revision,go_version}    always 1
//	credbot_policy_*                                   see internal/policy
//	go_*, process_*                                    the Go runtime and the process
type metrics struct {
	reg         *prometheus.Registry
	transitions *prometheus.CounterVec
	btpCalls    *prometheus.CounterVec
	btpTime     *prometheus.HistogramVec
	slackCalls  *prometheus.CounterVec
	slackTime   *prometheus.HistogramVec
	approveTime prometheus.Histogram
	deliverTime prometheus.Histogram
	acks        *prometheus.HistogramVec
	reveals     *prometheus.CounterVec
}

var _ approval.Observer = (*metrics)(nil)

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &metrics{
		reg: reg,
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbot_transitions_total",
			Help: "Request lifecycle transitions written by this replica, by target state.",
		}, []string{"to"}),
		btpCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbot_btp_requests_total",
			Help: "Round trips to the btp CLI server by operation and outcome (ok, refused, rate_limited, server_error, unreachable).",
		}, []string{"op", "outcome"}),
		btpTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "credbot_btp_request_duration_seconds", Help: "Round trips to the btp CLI server, by operation.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"op"}),
		slackCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbot_slack_requests_total",
			Help: "Slack Web API calls by method and outcome (ok, rate_limited, error, unreachable).",
		}, []string{"method", "outcome"}),
		slackTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "credbot_slack_request_duration_seconds", Help: "Slack Web API calls, by method.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		approveTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "credbot_time_to_approve_seconds", Help: "From a request's submission to its approval.",
			Buckets: []float64{10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600},
		}),
		deliverTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "credbot_time_to_deliver_seconds", Help: "From a request's submission to its secret shown to the requester.",
			Buckets: []float64{10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600},
		}),
		acks: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credbot_slack_ack_duration_seconds",
			Help:    "Slack requests over HTTP from arrival to answer, by kind (command, interaction, event) and HTTP status; Slack gives up after 3 seconds.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5},
		}, []string{"kind", "status"}),
		reveals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credbot_reveals_total",
			Help: "Reveal clicks by outcome: shown, refused, already_taken, unsealable, not_found, error, undeliverable.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.transitions, m.btpCalls, m.btpTime, m.slackCalls, m.slackTime, m.approveTime, m.deliverTime, m.acks, m.reveals)
	// The series alerts watch exist from the start at 0, so that the first
	// failure on a new replica is an increase, not a new series rate() misses.
	for _, to := range []approval.State{approval.StateFailed, approval.StateRevoked, approval.StateDelivered} {
		m.transitions.WithLabelValues(string(to))
	}
	for _, op := range []string{"login", "create", "get", "list", "delete", btp.OpAssign, btp.OpUnassign, btp.OpGetUser, btp.OpGetRoleCollection} {
		for _, o := range []string{"ok", "refused", "rate_limited", "server_error", "unreachable"} {
			m.btpCalls.WithLabelValues(op, o)
		}
	}
	for _, method := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral", "conversations.open", "views.publish"} {
		for _, o := range []string{"ok", "rate_limited", "error", "unreachable"} {
			m.slackCalls.WithLabelValues(method, o)
		}
	}
	version, revision := buildVersion()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "credbot_build_info", Help: "The running build: module version, VCS revision, Go version. Always 1.",
	}, []string{"version", "revision", "go_version"})
	build.WithLabelValues(version, revision, runtime.Version()).Set(1)
	reg.MustRegister(build)
	return m
}

// buildVersion is the module version and VCS revision the binary was built from.
func buildVersion() (version, revision string) {
	version, revision = "(devel)", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return version, revision
}

// transition counts changes of state; audit entries that only annotate a
// request (its message posted, its DM recorded) are not transitions.
func (m *metrics) transition(e approval.AuditEntry) {
	if e.From != e.To {
		m.transitions.WithLabelValues(string(e.To)).Inc()
	}
}

// Transitioned implements approval.Observer.
func (m *metrics) Transitioned(r *approval.Request, e approval.AuditEntry) {
	if e.From == e.To || r.CreatedAt.IsZero() {
		return
	}
	switch e.To {
	case approval.StateApproved:
		m.approveTime.Observe(e.At.Sub(r.CreatedAt).Seconds())
	case approval.StateDelivered:
		m.deliverTime.Observe(e.At.Sub(r.CreatedAt).Seconds())
	}
}

// ack is handlers.Config.ObserveAck.
func (m *metrics) ack(kind string, status int, took time.Duration) {
	m.acks.WithLabelValues(kind, strconv.Itoa(status)).Observe(took.Seconds())
}

// Revealed implements approval.Observer.
func (m *metrics) Revealed(outcome string) { m.reveals.WithLabelValues(outcome).Inc() }

func (m *metrics) btp(op, outcome string, took time.Duration) {
	m.btpCalls.WithLabelValues(op, outcome).Inc()
	m.btpTime.WithLabelValues(op).Observe(took.Seconds())
}

func (m *metrics) slack(method, outcome string, took time.Duration) {
	m.slackCalls.WithLabelValues(method, outcome).Inc()
	m.slackTime.WithLabelValues(method).Observe(took.Seconds())
}

// watch adds what is read at scrape time: the queues and pending requests
// (from Redis, bounded to 2 s) and the Socket Mode connection.
func (m *metrics) watch(st *store.Store, socketMode bool, connected func() bool) {
	m.reg.MustRegister(&queueCollector{store: st})
	if socketMode {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "credbot_socket_connected", Help: "1 while this replica's Socket Mode connection is up.",
		}, func() float64 { return map[bool]float64{true: 1}[connected()] }))
	}
}

var (
	queueDepthDesc  = prometheus.NewDesc("credbot_queue_depth", "Entries not yet done: the inbox of acknowledged Slack work, and the mint queue.", []string{"queue"}, nil)
	queueAgeDesc    = prometheus.NewDesc("credbot_queue_oldest_age_seconds", "Age of the oldest entry not yet done (0 when the queue is empty).", []string{"queue"}, nil)
	pendingReqsDesc = prometheus.NewDesc("credbot_pending_requests", "Requests waiting for approval.", nil, nil)
)

// queueCollector reads the queues from Redis when Prometheus scrapes; a
// failed read leaves the series out rather than reporting zeros.
type queueCollector struct{ store *store.Store }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueAgeDesc
	ch <- pendingReqsDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if qs, err := c.store.Queues(ctx); err == nil {
		for name, q := range qs {
			ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(q.Depth), name)
			ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, q.Oldest.Seconds(), name)
		}
	}
	if n, err := c.store.PendingCount(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(pendingReqsDesc, prometheus.GaugeValue, float64(n))
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
