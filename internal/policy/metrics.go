package policy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credbot/credbot/internal/approval"
)

type metrics struct {
	// byAction holds the decision counters, resolved once: looking labels up
	// costs more than a decision.
	byAction map[approval.Action]*[3]prometheus.Counter // allow, deny, error

	reloads     *prometheus.CounterVec
	healthy     prometheus.Gauge
	lastSuccess prometheus.Gauge
	rules       prometheus.Gauge
	decisions   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "credbot", Subsystem: "policy", Name: "reloads_total",
			Help: "Policy loads after a change of the policy files, by result (success, failure).",
		}, []string{"result"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "credbot", Subsystem: "policy", Name: "healthy",
			Help: "1 if the policy files on disk are the policy in force, 0 if they are broken and an older policy is kept.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "credbot", Subsystem: "policy", Name: "last_reload_success_timestamp_seconds",
			Help: "When the policy in force was loaded.",
		}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "credbot", Subsystem: "policy", Name: "rules",
			Help: "Rows (p and g) of the policy in force.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "credbot", Subsystem: "policy", Name: "decisions_total",
			Help: "Authorization decisions, by action and result (allow, deny, error).",
		}, []string{"action", "result"}),
	}
	m.byAction = map[approval.Action]*[3]prometheus.Counter{}
	for _, act := range []approval.Action{approval.ActionCreate, approval.ActionApprove, approval.ActionList, approval.ActionGet, approval.ActionDelete, approval.ActionBreakglass, approval.ActionReview, "invalid"} {
		m.byAction[act] = &[3]prometheus.Counter{
			m.decisions.WithLabelValues(string(act), "allow"),
			m.decisions.WithLabelValues(string(act), "deny"),
			m.decisions.WithLabelValues(string(act), "error"),
		}
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.reloads, m.healthy, m.lastSuccess, m.rules, m.decisions} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

// decision counts one Authorize outcome; unknown actions count as "invalid"
// so that callers cannot create label values.
func (m *metrics) decision(act approval.Action, allowed bool, err error) {
	c, ok := m.byAction[act]
	if !ok {
		c = m.byAction["invalid"]
	}
	switch {
	case err != nil:
		c[2].Inc()
	case allowed:
		c[0].Inc()
	default:
		c[1].Inc()
	}
}
