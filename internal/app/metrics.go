package app

import (
	"net/http"

	"github.com/credbot/credbot/internal/approval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is one replica's Prometheus registry (no global state): the
// process, the policy engine's credbot_policy_* and the lifecycle's
// transitions, labelled only by state names — never by request, user or name.
type metrics struct {
	reg         *prometheus.Registry
	transitions *prometheus.CounterVec
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	t := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credbot_transitions_total",
		Help: "Request lifecycle transitions written by this replica, by target state.",
	}, []string{"to"})
	reg.MustRegister(t)
	return &metrics{reg: reg, transitions: t}
}

// transition counts changes of state; audit entries that only annotate a
// request (its message posted, its DM recorded) are not transitions.
func (m *metrics) transition(e approval.AuditEntry) {
	if e.From != e.To {
		m.transitions.WithLabelValues(string(e.To)).Inc()
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
