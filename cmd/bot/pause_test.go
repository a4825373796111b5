package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestParsePause(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    time.Duration
		help    bool
		wantErr string
	}{
		{args: []string{"5s"}, want: 5 * time.Second},
		{args: []string{"1m"}, want: time.Minute},
		{args: []string{"1m30s"}, want: 90 * time.Second},
		{args: []string{"1500ms"}, want: 1500 * time.Millisecond},
		{args: []string{"0s"}, want: 0},
		{args: []string{"0"}, want: 0},
		{args: []string{"--help"}, help: true},
		{args: []string{"-h"}, help: true},
		{args: nil, wantErr: "want exactly one DURATION, got 0"},
		{args: []string{"5s", "5s"}, wantErr: "want exactly one DURATION, got 2"},
		{args: []string{"5"}, wantErr: `"5" is not a duration`},
		{args: []string{"5 s"}, wantErr: `"5 s" is not a duration`},
		{args: []string{"1d"}, wantErr: `"1d" is not a duration`},
		{args: []string{""}, wantErr: `"" is not a duration`},
		{args: []string{"-5s"}, wantErr: `"-5s" is negative`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			d, help, err := parsePause(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || d != tc.want || help != tc.help {
				t.Fatalf("= %v, %v, %v; want %v, %v, nil", d, help, err, tc.want, tc.help)
			}
		})
	}
}

func TestPauseExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		status      int
		out, errOut string
	}{
		{args: []string{"0s"}, status: 0},
		{args: []string{"1ms"}, status: 0},
		{args: []string{"--help"}, status: 0, out: "usage: credbot pause DURATION"},
		{args: []string{"soon"}, status: 2, errOut: `credbot pause: "soon" is not a duration like 5s or 1m`},
		{args: nil, status: 2, errOut: "usage: credbot pause DURATION"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if got := pause(context.Background(), tc.args, &out, &errOut); got != tc.status {
				t.Errorf("status %d, want %d (stderr %q)", got, tc.status, errOut.String())
			}
			if !strings.Contains(out.String(), tc.out) || tc.out == "" && out.Len() > 0 {
				t.Errorf("stdout %q, want %q", out.String(), tc.out)
			}
			if !strings.Contains(errOut.String(), tc.errOut) || tc.errOut == "" && errOut.Len() > 0 {
				t.Errorf("stderr %q, want %q", errOut.String(), tc.errOut)
			}
		})
	}
}

// A signal (the cancelled context) ends the wait with 0: whoever sent it
// wants the shutdown to go on, not a failed hook.
func TestPauseEndsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := pause(ctx, []string{"1h"}, &bytes.Buffer{}, &bytes.Buffer{}); got != 0 {
		t.Errorf("status %d, want 0", got)
	}
}
