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
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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

// run is btptest.Serve, named for the tests of this command.
func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string, ready func(addr string)) error {
	return btptest.Serve(ctx, args, stderr, getenv, ready)
}
