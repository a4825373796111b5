package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/credbot/credbot/internal/handlers"
	"github.com/credbot/credbot/internal/slackfake"
)

// driverRun is one run of signed slash commands for a sender: at Rate per
// second for Steady (an open loop), or else N of them Conc at a time (a
// closed loop). Command names are Tag-00000, Tag-00001, …
type driverRun struct {
	BotURL    string        `json:"bot_url"`              // the bot's, or the floor's, base URL
	BesideURL string        `json:"beside_url,omitempty"` // a steady run's second handler (the floor beside the bot)
	Secret    string        `json:"secret"`               // the signing secret
	Team      string        `json:"team"`
	Command   string        `json:"command"`
	User      string        `json:"user"`
	UserName  string        `json:"user_name"`
	Responses string        `json:"responses"` // the fake Slack's response_url base
	Tag       string        `json:"tag"`
	Rate      int           `json:"rate,omitempty"`
	Steady    time.Duration `json:"steady,omitempty"`
	N         int           `json:"n,omitempty"`
	Conc      int           `json:"conc,omitempty"`
}

// driverResult is what a sender in a process of its own reports back.
type driverResult struct {
	Lat    []time.Duration `json:"lat"`
	Acked  []sentCommand   `json:"acked"` // in the order of Lat
	Failed int             `json:"failed"`
	// Beside and BesideFailed are BesideURL's.
	Beside       []time.Duration `json:"beside,omitempty"`
	BesideFailed int             `json:"beside_failed,omitempty"`
	LastAck      time.Time       `json:"last_ack"` // the same machine's clock as the bot's
	MaxRSS       int64           `json:"max_rss"`  // the sender's own peak, bytes
}

// driverResultPrefix marks the result line on a sender's standard output.
const driverResultPrefix = "LOAD-DRIVER-RESULT "

// keepAliveClient keeps a connection per concurrent request, up to conns, as
// a steady sender like Slack would, instead of http.DefaultClient's two.
func keepAliveClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 0, conns+8
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// workspaceFor is a sender's workspace for r.
func workspaceFor(r driverRun, slack *slackfake.Server) *slackfake.Workspace {
	return &slackfake.Workspace{
		Slack: slack, Responses: r.Responses, BotURL: r.BotURL, SigningSecret: r.Secret,
		Team: r.Team, Command: r.Command, Sign: handlers.Sign, HTTP: keepAliveClient(max(r.Conc, r.Rate/10)),
	}
}

// fire sends r's commands through ws.
func fire(ctx context.Context, ws *slackfake.Workspace, r driverRun) runResult {
	p := slackfake.Person{ID: r.User, Name: r.UserName}
	if r.Steady > 0 {
		var beside *slackfake.Workspace
		if r.BesideURL != "" {
			b := *ws
			b.BotURL = r.BesideURL
			beside = &b
		}
		return steadyRun(ctx, ws, beside, p, r.Rate, r.Steady, r.Tag)
	}
	return closedRun(ctx, ws, p, r.N, r.Conc, r.Tag)
}

// RunLoadDriver is `load -burst`'s sender in a process of its own: it reads
// one run as JSON from in, fires it at the bot and writes the outcome as one
// line to out. Apart from the bot, the sender's thousand connections and
// goroutines count in neither the bot's peak RSS nor its CPU.
func RunLoadDriver(ctx context.Context, in io.Reader, out io.Writer) error {
	var r driverRun
	if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&r); err != nil {
		return fmt.Errorf("load driver: read the run: %w", err)
	}
	if r.BotURL == "" || r.Responses == "" || (r.Steady <= 0 && (r.N <= 0 || r.Conc <= 0)) {
		return errors.New("load driver: the run names no bot, no response_url base, or nothing to send")
	}
	ws := workspaceFor(r, nil)
	res := fire(ctx, ws, r)
	ws.HTTP.CloseIdleConnections()
	dr := driverResult{Lat: res.lat, Acked: res.acked, Failed: res.failed, LastAck: res.lastAck, MaxRSS: peakRSS(),
		Beside: res.beside, BesideFailed: res.besideFailed}
	b, err := json.Marshal(dr)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s%s\n", driverResultPrefix, b)
	return err
}

// childDriver fires runs from a process of its own: argv (with env added to
// this process's environment) runs RunLoadDriver.
type childDriver struct {
	argv   []string
	env    []string
	maxRSS int64 // the largest peak any run of it reported
}

func (d *childDriver) fire(ctx context.Context, r driverRun) (runResult, error) {
	spec, err := json.Marshal(r)
	if err != nil {
		return runResult{}, err
	}
	cmd := exec.CommandContext(ctx, d.argv[0], d.argv[1:]...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdin = bytes.NewReader(spec)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return runResult{}, fmt.Errorf("load driver %s: %w; it said: %s", d.argv[0], err, strings.TrimSpace(stderr.String()))
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), driverResultPrefix)
		if !ok {
			continue
		}
		var dr driverResult
		if err := json.Unmarshal([]byte(line), &dr); err != nil {
			return runResult{}, fmt.Errorf("load driver: read its result: %w", err)
		}
		if len(dr.Acked) != len(dr.Lat) {
			return runResult{}, errors.New("load driver: its result does not add up")
		}
		res := runResult{lat: dr.Lat, acked: dr.Acked, failed: dr.Failed, lastAck: dr.LastAck, beside: dr.Beside, besideFailed: dr.BesideFailed}
		d.maxRSS = max(d.maxRSS, dr.MaxRSS)
		return res, nil
	}
	return runResult{}, fmt.Errorf("load driver %s wrote no result; it said: %s", d.argv[0], strings.TrimSpace(stderr.String()))
}
