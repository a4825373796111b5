package main

import (
	"context"
	"io"
	"testing"

	"github.com/credbot/credbot/internal/approval"
	"github.com/credbot/credbot/internal/btp"
	"github.com/credbot/credbot/internal/btp/btptest"
)

func TestEmulatorCommandServesTheBotsClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	env := map[string]string{"BTP_EMULATOR_PASSWORD": "from-env"}
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--global-account", "local-ga"}, io.Discard,
			func(k string) string { return env[k] }, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	c, err := btp.New(btp.Config{ServerURL: "http://" + addr, GlobalAccount: "local-ga",
		Username: btptest.DefaultUser, Password: "from-env"})
	if err != nil {
		t.Fatal(err)
	}
	scope := approval.Scope{Kind: approval.ScopeSubaccount, ID: btptest.DefaultSubaccount}
	is, err := c.Create(ctx, approval.CredentialSpec{Scope: scope, Name: "local"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if is.Secret.IsZero() || is.Credential.TokenURL == "" {
		t.Errorf("issued %+v", is.Credential)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}
