// Command bot runs credbot.
//
//	bot                      serve Slack if SLACK_BOT_TOKEN is set, else run the local demo
//	bot serve                serve Slack with the configuration from the environment
//	                         (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)
//	bot local                run the whole loop on embedded defaults and print a transcript
//	bot btp-emulator --listen 127.0.0.1:8081   serve the BTP CLI server emulator
//	bot policy test [dir]    run the policy's decision table (default: policies/)
//	bot load [-n 200] [-c 20] run n whole loops through the local bot, c at a time, and print latency
//	                         percentiles, flows/s, CPU per flow and peak RSS
//	bot load -burst [-n 20000] [-c 1000] [-rate 500] [-steady 3s]
//	                         fire n slash commands at the bot, c at a time, check none is lost, and
//	                         compare its ack p99 at a steady rate with a bare slack-go handler's,
//	                         each alone and side by side
//	bot doctor               check every dependency of the configuration in the environment, with fixes
//	bot audit verify [--expect-head CHAIN/SEQ/MAC]
//	                         check the MAC'd audit trail in REDIS_URL (needs CREDBOT_AUDIT_KEY); prints its head
//	bot audit export [--since TIME|ID]  write the audit trail (from an RFC 3339 time or after a stream id) as JSON lines
//	bot audit trim --keep N  remove all but the last N audit entries, through a signed checkpoint
//	bot pause DURATION       wait, then exit 0: the chart's preStop hook (the image has no sleep)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/credbot/credbot/internal/app"
	"github.com/credbot/credbot/internal/btp/btptest"
	"github.com/credbot/credbot/internal/policy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:])
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		// --help printed the usage: not a failure.
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "credbot:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "credbot:", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line: exit status 2, as Go's flag
// package and most tools do.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

// noArgs refuses arguments a command does not take.
func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments, got %q (try: credbot %s --help)", cmd, strings.Join(args, " "), cmd)}
	}
	return nil
}

func run(ctx context.Context, args []string) error {
	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "help", "-h", "-help", "--help":
		if len(args) == 1 && commandUsage(os.Stdout, args[0]) {
			return nil
		}
		usage(os.Stdout)
		return nil
	case "version", "-version", "--version":
		fmt.Println(version())
		return nil
	case "load-driver":
		// The sender that load -burst starts in a process of its own: it
		// reads its run as JSON on stdin and writes the outcome to stdout.
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		return app.RunLoadDriver(ctx, os.Stdin, os.Stdout)
	}
	if cmd != "load" && cmd != "btp-emulator" && cmd != "audit" && cmd != "pause" && wantsHelp(args) {
		// Commands with flags answer --help themselves.
		if !commandUsage(os.Stdout, cmd) {
			return usageError{fmt.Sprintf("unknown command %q (try: credbot --help)", cmd)}
		}
		return nil
	}
	format := defaultLogFormat(cmd, os.Getenv)
	log, err := app.NewLogger(os.Getenv, os.Stderr, format)
	if err != nil {
		if format == "json" { // serve: report every configuration problem, not only the log settings
			if _, cerr := app.LoadConfig(os.Getenv); cerr != nil {
				return cerr
			}
		}
		return err
	}
	switch cmd {
	case "":
		if os.Getenv("SLACK_BOT_TOKEN") == "" {
			return local(ctx, log)
		}
		return serve(ctx, log)
	case "serve":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		return serve(ctx, log)
	case "local":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		return local(ctx, log)
	case "btp-emulator":
		return btptest.Serve(ctx, args, os.Stderr, os.Getenv, nil)
	case "policy":
		if len(args) == 0 || args[0] != "test" || len(args) > 2 {
			return usageError{"usage: credbot policy test [DIR]"}
		}
		dir := "policies"
		if len(args) > 1 {
			dir = args[1]
		}
		failed, err := policy.RunTests(ctx, dir, os.Stdout)
		if err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("%d policy test(s) failed", failed)
		}
		return nil
	case "audit":
		return audit(ctx, args)
	case "doctor":
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		return app.Doctor(ctx, os.Getenv, os.Stdout)
	case "load":
		return load(ctx, args)
	case "pause":
		if status := pause(ctx, args, os.Stdout, os.Stderr); status != 0 {
			os.Exit(status)
		}
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q (try: credbot --help)", cmd)}
}

// defaultLogFormat: a server's lines go to a log pipeline (JSON); a person
// at a terminal reads the rest (text). CREDBOT_LOG_FORMAT overrides either.
func defaultLogFormat(cmd string, getenv func(string) string) string {
	if cmd == "serve" || (cmd == "" && getenv("SLACK_BOT_TOKEN") != "") {
		return "json"
	}
	return "text"
}

func serve(ctx context.Context, log *slog.Logger) error {
	cfg, err := app.LoadConfig(os.Getenv)
	if err != nil {
		return err
	}
	app.ApplyMemoryLimit(os.Getenv, "/", log)
	a, err := app.New(ctx, cfg, app.Deps{}, log)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	a.Close()
	return nil
}

func local(ctx context.Context, log *slog.Logger) error {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if os.Getenv("CREDBOT_LOG_LEVEL") != "" {
		quiet = log
	}
	fmt.Println("credbot local mode: fake Slack, BTP emulator and in-process Redis (override with REDIS_URL, BTP_CLI_SERVER_URL).")
	l, err := app.StartLocal(ctx, os.Getenv, quiet, app.Deps{})
	if err != nil {
		return err
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return l.Demo(ctx, os.Stdout)
}

func load(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	n := fs.Int("n", 200, "loops to run (with -burst: commands to fire, default 20000)")
	c := fs.Int("c", 20, "loops at a time (with -burst: commands in flight, default 1000)")
	burst := fs.Bool("burst", false, "fire slash commands only, then check that every one was carried out")
	rate := fs.Int("rate", 500, "with -burst: requests per second of the steady runs that compare the bot's ack with a bare handler's (each alone, then side by side, each at this rate)")
	steady := fs.Duration("steady", 3*time.Second, "with -burst: how long each steady run lasts (0 skips them)")
	cpuProfile := fs.String("cpuprofile", "", "write the CPU profile of the run (of the burst, with -burst) to this file, for go tool pprof")
	inProcess := fs.Bool("inprocess", false, "with -burst: send the commands from this process, not from a process of its own (its connections and goroutines then count in the peak RSS and CPU)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *burst {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["n"] {
			*n = 20_000
		}
		if !set["c"] {
			*c = 1000
		}
	}
	if *n < 1 || *n > 100_000 || *c < 1 || *c > 1000 || *rate < 1 || *rate > 10_000 || *steady < 0 {
		return errors.New("load: -n 1..100000, -c 1..1000, -rate 1..10000")
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	bt := app.NewMintTimer()
	// Every command is counted against a per-user limit, as in production
	// (one round trip with its record), but one that no run reaches.
	l, err := app.StartLocal(ctx, os.Getenv, quiet, app.Deps{Hooks: bt.Hooks(), CommandLimit: math.MaxInt32})
	if err != nil {
		return err
	}
	defer l.Close()
	// The fake Slack runs in this process: bound its memory so that the peak
	// RSS is mostly the bot's. A loop waits only for calls since its last
	// step; a burst's check follows the calls as they come.
	keep := max(2000, 20**c)
	if *burst {
		keep = 1000
	}
	l.Slack.KeepLast(keep)
	if l.BTP != nil {
		l.BTP.KeepLast(keep) // its request log, likewise
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if *burst {
		o := app.BurstOptions{N: *n, Conc: *c, Rate: *rate, Steady: *steady, CPUProfile: *cpuProfile}
		if !*inProcess {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("load: find this binary to start the sender from: %w (or use -inprocess)", err)
			}
			o.Driver = []string{exe, "load-driver"}
		}
		return l.Burst(ctx, o, os.Stdout)
	}
	return l.LoadWith(ctx, app.LoadOptions{N: *n, Conc: *c, BTP: bt, CPUProfile: *cpuProfile}, os.Stdout)
}
