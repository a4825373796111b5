package app

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRoutedChannelChecksAreBoundedAndRemembered: each readiness round asks
// Slack about at most routeChecksPerRound routed channels, least recently
// checked first, and reports every channel's last known problem, so a
// channel the bot is not in stays reported between its checks.
func TestRoutedChannelChecksAreBoundedAndRemembered(t *testing.T) {
	channels := []string{"C01", "C02", "C03", "C04", "C05", "C06", "C07"}
	outside := map[string]bool{"C02": true}
	var asked []string
	isMember := func(_ context.Context, ch string) (bool, string, error) {
		asked = append(asked, ch)
		return !outside[ch], strings.ToLower(ch), nil
	}
	var rc routeChecks
	now := time.Date(2026, 11, 29, 22, 0, 0, 0, time.UTC)
	for round := 1; round <= 6; round++ {
		before := len(asked)
		err := rc.check(context.Background(), channels, isMember, now.Add(time.Duration(round)*30*time.Second))
		if n := len(asked) - before; n != routeChecksPerRound {
			t.Fatalf("round %d asked Slack %d times, want %d", round, n, routeChecksPerRound)
		}
		// C02 is among the first round's checks: reported from then on.
		if err == nil || !strings.Contains(err.Error(), "not a member of C02 (#c02)") || strings.Contains(err.Error(), "C01 ") {
			t.Fatalf("round %d: %v, want C02 and only C02 reported", round, err)
		}
	}
	// Seven channels, three a round: each was asked about at least twice in
	// six rounds, the oldest answer first.
	if strings.Join(asked[:9], ",") != "C01,C02,C03,C04,C05,C06,C07,C01,C02" {
		t.Errorf("order of checks: %v", asked)
	}
	// The bot is invited, and the channel's next check clears it.
	outside["C02"] = false
	var err error
	for i := 0; i < 3; i++ {
		err = rc.check(context.Background(), channels, isMember, now.Add(time.Hour+time.Duration(i)*time.Second))
	}
	if err != nil {
		t.Fatalf("after the invite, within a full cycle: %v", err)
	}
	// A channel no route names any more is forgotten.
	outside["C09"] = true
	if err := rc.check(context.Background(), []string{"C09"}, isMember, now.Add(2*time.Hour)); err == nil {
		t.Fatal("C09 outside: not reported")
	}
	if err := rc.check(context.Background(), []string{"C01"}, isMember, now.Add(3*time.Hour)); err != nil {
		t.Fatalf("C09 is no longer routed but still reported: %v", err)
	}
	if len(rc.last) != 1 {
		t.Errorf("remembers %d channels, want 1", len(rc.last))
	}
}
