// Command btp-emulator serves the btp CLI server emulator of
// internal/btp/btptest for local runs of the bot:
//
//	btp-emulator --listen 127.0.0.1:8081
//
// then point the bot at it with BTP_CLI_SERVER_URL=http://127.0.0.1:8081,
// BTP_GLOBALACCOUNT=acme-ga, BTP_USERNAME=btp-bot@acme.example and
// BTP_PASSWORD=local-password (the defaults; see --help to change them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/credbot/credbot/internal/btp/btptest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, os.Getenv, nil); err != nil {
		fmt.Fprintln(os.Stderr, "btp-emulator:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable or comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// run serves until ctx ends. ready, if not nil, learns the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string, ready func(addr string)) error {
	fs := flag.NewFlagSet("btp-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve on")
	ga := fs.String("global-account", btptest.DefaultGlobalAccount, "global account subdomain")
	user := fs.String("user", btptest.DefaultUser, "user name that may log in")
	idp := fs.String("idp", "", "custom IdP that logins must name (empty: default IdP)")
	minVersion := fs.String("min-protocol-version", "", "answer 412 to older protocol versions, e.g. v2.106.1")
	ttl := fs.Duration("session-ttl", btptest.DefaultSessionTTL, "sliding session lifetime")
	var subs, dirs listFlag
	fs.Var(&subs, "subaccount", "subaccount GUID (repeatable; default "+btptest.DefaultSubaccount+")")
	fs.Var(&dirs, "directory", "directory GUID (repeatable; default "+btptest.DefaultDirectory+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The password comes from the environment so that it stays out of ps.
	password := getenv("BTP_EMULATOR_PASSWORD")
	if password == "" {
		password = btptest.DefaultPassword
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := btptest.NewHandler(btptest.Options{
		GlobalAccount:      *ga,
		Users:              map[string]string{*user: password},
		IdP:                *idp,
		Subaccounts:        subs,
		Directories:        dirs,
		SessionTTL:         *ttl,
		MinProtocolVersion: *minVersion,
		Logger:             log,
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Info("btp emulator listening", "url", "http://"+ln.Addr().String(), "global_account", *ga, "user", *user)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
