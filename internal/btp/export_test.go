package btp

import (
	"context"
	"time"
)

// Seams for the external tests: a fake clock and a recording sleep keep
// retry and session-age tests deterministic.

func SetSleep(c *Client, f func(ctx context.Context, d time.Duration) error) { c.sleep = f }

func SetNow(c *Client, f func() time.Time) { c.now = f }
