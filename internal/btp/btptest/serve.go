package btptest

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

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

// Serve runs the emulator as a command (flags as in cmd/btp-emulator) until ctx
// ends. ready, if not nil, learns the bound address.
func Serve(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string, ready func(addr string)) error {
	fs := flag.NewFlagSet("btp-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve on")
	ga := fs.String("global-account", DefaultGlobalAccount, "global account subdomain")
	user := fs.String("user", DefaultUser, "user name that may log in")
	idp := fs.String("idp", "", "custom IdP that logins must name (empty: default IdP)")
	minVersion := fs.String("min-protocol-version", "", "answer 412 to older protocol versions, e.g. v2.106.1")
	ttl := fs.Duration("session-ttl", DefaultSessionTTL, "sliding session lifetime")
	var subs, dirs listFlag
	fs.Var(&subs, "subaccount", "subaccount GUID (repeatable; default "+DefaultSubaccount+")")
	fs.Var(&dirs, "directory", "directory GUID (repeatable; default "+DefaultDirectory+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The password comes from the environment so that it stays out of ps.
	password := getenv("BTP_EMULATOR_PASSWORD")
	if password == "" {
		password = DefaultPassword
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := NewHandler(Options{
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
