package btp

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/credbot/credbot/internal/approval"
)

// verify proves a new credential works by fetching a client_credentials token
// from its tokenurl: basic auth (or form, as the server prefers) with the
// client secret, or mutual TLS with a certificate credential's own key pair.
// Only the fact of success is kept; the token is dropped.
func (c *Client) verify(ctx context.Context, is approval.Issued, corr string) error {
	cred := is.Credential
	fail := func(msg string, transient bool) error {
		return &Error{Op: "verify", Scope: cred.Scope, Name: cred.Name, CorrelationID: corr,
			Err: ErrVerification, Message: msg, transport: transient}
	}
	if cred.TokenURL == "" || cred.ClientID == "" {
		return fail("the create response has no tokenurl or clientid", false)
	}
	var secret, cert, key string
	for _, f := range is.Secret.Fields() {
		switch f.Name {
		case "clientsecret":
			secret = f.Value
		case "certificate":
			cert = f.Value
		case "key":
			key = f.Value
		}
	}
	hc := c.httpc
	cc := clientcredentials.Config{ClientID: cred.ClientID, TokenURL: cred.TokenURL}
	switch {
	case secret != "":
		if !safeForSecrets(cred.TokenURL) {
			return fail("token URL "+clean(cred.TokenURL)+" is not https: credbot sends a client secret only over https "+
				"(plain http only to a loopback host)", false)
		}
		cc.ClientSecret = secret
		cc.AuthStyle = oauth2.AuthStyleAutoDetect
	case cert != "" && key != "" && strings.HasPrefix(cred.TokenURL, "https://"):
		pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
		if err != nil {
			// What the server puts in "key" is not recorded (reference §6);
			// if it is not the certificate's key we cannot prove anything.
			c.log.LogAttrs(ctx, slog.LevelWarn, "btp cannot verify a certificate credential: returned key does not match its certificate",
				slog.String("name", cred.Name), slog.String("correlation_id", corr))
			return nil
		}
		hc = mtlsClient(c.httpc, func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil })
		cc.AuthStyle = oauth2.AuthStyleInParams
	default:
		// The caller supplied the certificate and keeps its private key, or the
		// token URL is not TLS: we cannot present the certificate.
		why := "BTP returned no private key: the requester holds it, so only they can get a token"
		if cert != "" && key != "" {
			why = "the tokenurl is not https, so there is no TLS to present the certificate over"
		}
		c.log.LogAttrs(ctx, slog.LevelInfo, "btp skipping verification of a certificate credential",
			slog.String("name", cred.Name), slog.String("reason", why), slog.String("correlation_id", corr))
		return nil
	}
	var err error
	var re *oauth2.RetrieveError
	transient := false
	for attempt := 0; ; attempt++ {
		re = nil
		if _, err = cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc)); err == nil {
			c.log.LogAttrs(ctx, slog.LevelInfo, "btp credential verified",
				slog.String("name", cred.Name), slog.String("token_url", cred.TokenURL),
				slog.Int("attempts", attempt+1), slog.String("correlation_id", corr))
			return nil
		}
		transient = !errors.As(err, &re) || re.Response == nil || re.Response.StatusCode >= 500
		// A 401 right after the create can mean the tenant's token service
		// has not learnt of the new client yet: worth asking again, as a
		// 5xx or a network error is. Anything else (a redirect, a 400) will
		// not change.
		fresh := re != nil && re.Response != nil && re.Response.StatusCode == 401
		if (!transient && !fresh) || attempt >= c.cfg.MaxRetries || ctx.Err() != nil {
			break
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "btp credential not verified yet, asking the token endpoint again",
			slog.String("name", cred.Name), slog.Int("attempt", attempt+1), slog.String("correlation_id", corr))
		if c.sleep(ctx, c.backoff(attempt, 0)) != nil {
			break
		}
	}
	// Build the message ourselves: the secret must not leak through whatever
	// the oauth2 package or the token endpoint chose to say.
	msg := "token endpoint " + cred.TokenURL + " refused a client_credentials grant"
	if re != nil && re.Response != nil && re.Response.StatusCode >= 300 && re.Response.StatusCode < 400 {
		// Not followed (withoutRedirects): the next host would get the secret.
		from, _ := url.Parse(cred.TokenURL)
		msg = "token endpoint " + cred.TokenURL + ": " + redirectMessage(from, re.Response.Header.Get("Location"),
			"so the new credential cannot be proved")
	} else if re != nil && re.Response != nil {
		msg += ": status " + re.Response.Status
		if re.ErrorCode != "" {
			msg += " " + scrub(re.ErrorCode, secret, key)
		}
	} else {
		msg = "token endpoint " + cred.TokenURL + " unreachable: " + scrub(err.Error(), secret, key)
	}
	return fail(msg, transient)
}

// safeForSecrets says whether a client secret may be posted to rawURL: over
// https, or over plain http to this machine only (the emulator, local mode). A
// tokenurl comes from BTP's answer; a plain-http one elsewhere would put the
// secret on the wire in the clear.
func safeForSecrets(rawURL string) bool {
	u, err := url.Parse(rawURL)
	switch {
	case err != nil || u.Host == "":
		return false
	case u.Scheme == "https":
		return true
	case u.Scheme != "http":
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// scrub removes secret material, plain or URL-encoded, from text.
func scrub(text string, secrets ...string) string {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			text = strings.ReplaceAll(text, v, "[REDACTED]")
		}
	}
	return text
}
