package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// parseInterval reads CREDBOT_INVENTORY_INTERVAL: a duration of at least a
// second, or "off" / "0" for no inventory.
func parseInterval(v string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "0", "0s":
		return 0, nil
	}
	d, err := ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < time.Second {
		return 0, fmt.Errorf("%s is shorter than a second", d)
	}
	return d, nil
}

var unmanagedDesc = prometheus.NewDesc("credbot_unmanaged_credentials",
	"API credentials at BTP that credbot did not issue, per scope of hierarchy.yaml, as the last inventory sweep of that scope found them (the same on every replica).",
	[]string{"scope"}, nil)

// inventoryCollector reads the inventory's counts from Redis when Prometheus
// scrapes, so that every replica reports what the one that swept found.
type inventoryCollector struct{ store *store.Store }

func (c *inventoryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- unmanagedDesc }

func (c *inventoryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.store.UnmanagedCounts(ctx)
	if err != nil {
		return // a failed read leaves the series out rather than reporting zeros
	}
	for scope, n := range counts {
		ch <- prometheus.MustNewConstMetric(unmanagedDesc, prometheus.GaugeValue, float64(n), scope)
	}
}
