package btp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/credbot/credbot/internal/approval"
)

const commandPath = "/security/api-credential"

// Credential types as the server spells them in credential-type.
const (
	TypeSecret            = "secret"
	TypeBindingSecret     = "binding-secret" // older spelling in SAP's docs
	TypeClientCertificate = "client certificate"
)

// scopeParam is the one paramValues key that names the scope. The global
// account is addressed by subdomain, the others by GUID.
func scopeParam(s approval.Scope) string {
	switch s.Kind {
	case approval.ScopeSubaccount:
		return "subaccount"
	case approval.ScopeDirectory:
		return "directory"
	case approval.ScopeGlobalAccount:
		return "globalAccount"
	}
	return ""
}

// checkScope validates a scope before it reaches the wire. The session belongs
// to one global account, so a global-account scope must be that one.
func (c *Client) checkScope(s approval.Scope) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Kind == approval.ScopeGlobalAccount && !strings.EqualFold(s.ID, c.cfg.GlobalAccount) {
		return fmt.Errorf("%w: this bot is logged in to global account %q, not %q", approval.ErrInvalid, c.cfg.GlobalAccount, s.ID)
	}
	return nil
}

func (c *Client) command(action string, scope approval.Scope, name, corr string, params map[string]string) *call {
	return c.commandAt(commandPath, action, scope, name, corr, params)
}

// commandAt builds a command of any object, e.g. /security/role-collection.
func (c *Client) commandAt(object, action string, scope approval.Scope, name, corr string, params map[string]string) *call {
	p := map[string]string{scopeParam(scope): scope.ID}
	for k, v := range params {
		if v != "" { // the protocol drops empty strings (reference §1.4)
			p[k] = v
		}
	}
	return &call{
		op:      action,
		path:    "/command/" + c.cfg.ProtocolVersion + object + "?" + action,
		corr:    corr,
		scope:   scope,
		name:    name,
		command: true,
		body: func(context.Context) ([]byte, error) {
			return jsonBody(struct {
				ParamValues map[string]string `json:"paramValues"`
			}{p})
		},
	}
}

// localError reports a request refused before it was sent.
func localError(op string, scope approval.Scope, name, corr string, err error) *Error {
	return &Error{Op: op, Scope: scope, Name: name, CorrelationID: corr, Err: err}
}

// Create makes a new API credential and returns it with its one-time secret.
//
// A create is never repeated blindly. When its outcome is unknown (the
// connection dropped after the request was sent, or a 5xx other than the clean
// "not sent to the backend" 504), Create looks the name up: absent, it creates
// again; present, and only when spec.OwnsName says the caller saw the name
// free and holds it, it deletes that credential, whose secret nobody holds,
// and creates again. Without OwnsName a credential found there may be anyone's
// (another user's, Terraform's), so nothing is deleted and the error matches
// ErrAmbiguous. A nil error therefore means exactly one live credential whose
// secret the caller holds. If the ambiguity cannot be resolved, the error
// matches ErrAmbiguous: a credential of that name may exist.
//
// A name that already exists on the first attempt is refused with an error
// matching approval.ErrConflict; it is never deleted, since it may belong to
// someone else.
func (c *Client) Create(ctx context.Context, spec approval.CredentialSpec) (approval.Issued, error) {
	corr := newCorrelationID()
	if err := c.checkScope(spec.Scope); err != nil {
		return approval.Issued{}, localError("create", spec.Scope, spec.Name, corr, err)
	}
	if err := approval.ValidateName(spec.Name); err != nil {
		return approval.Issued{}, localError("create", spec.Scope, spec.Name, corr, err)
	}
	if spec.Certificate != "" {
		if err := ValidateCertificate(spec.Certificate); err != nil {
			return approval.Issued{}, localError("create", spec.Scope, spec.Name, corr, err)
		}
	}
	log := c.log.With(slog.String("correlation_id", corr), slog.String("scope", spec.Scope.String()), slog.String("name", spec.Name))

	for attempt := 0; ; attempt++ {
		issued, err := c.createOnce(ctx, spec, corr)
		if err == nil {
			if c.cfg.VerifyCredentials {
				if verr := c.verify(ctx, issued, corr); verr != nil {
					// Never hand out what does not work, and leave nothing behind.
					c.discard(ctx, spec, corr, "verification failed")
					return approval.Issued{}, verr
				}
			}
			log.LogAttrs(ctx, slog.LevelInfo, "btp api-credential created",
				slog.String("type", issued.Credential.Type), slog.Bool("read_only", issued.Credential.ReadOnly),
				slog.String("client_id", issued.Credential.ClientID), slog.Int("attempts", attempt+1))
			return issued, nil
		}
		var e *Error
		isErr := errors.As(err, &e)
		switch {
		case isErr && e.ambiguous:
		case attempt > 0 && errors.Is(err, approval.ErrConflict):
			// Our previous, ambiguous attempt did create it after all and the
			// name lookup had not seen it yet.
		default:
			return approval.Issued{}, err
		}
		// Resolving is not a blind retry, so it happens even with retries
		// disabled; it is bounded all the same.
		if attempt >= max(c.cfg.MaxRetries, 2) {
			return approval.Issued{}, err
		}
		log.LogAttrs(ctx, slog.LevelWarn, "btp create outcome unknown, resolving by name",
			slog.Int("attempt", attempt+1), slog.String("error", err.Error()))
		if rerr := c.resolve(ctx, spec, corr, log); rerr != nil {
			return approval.Issued{}, rerr
		}
		if err := c.sleep(ctx, c.backoff(attempt, 0)); err != nil {
			return approval.Issued{}, ambiguousError(spec, corr, err)
		}
	}
}

func ambiguousError(spec approval.CredentialSpec, corr string, cause error) *Error {
	return &Error{Op: "create", Scope: spec.Scope, Name: spec.Name, CorrelationID: corr, ambiguous: true,
		Message: "outcome unknown, a credential of this name may exist", Err: cause}
}

// resolve removes whatever an ambiguous create may have left behind, so that
// the next attempt starts from "absent".
func (c *Client) resolve(ctx context.Context, spec approval.CredentialSpec, corr string, log *slog.Logger) error {
	_, gerr := c.get(ctx, spec.Scope, spec.Name, corr)
	switch {
	case errors.Is(gerr, approval.ErrNotFound):
		log.LogAttrs(ctx, slog.LevelInfo, "btp create had not happened, creating again")
		return nil
	case gerr != nil:
		return ambiguousError(spec, corr, gerr)
	}
	if !spec.OwnsName {
		// The caller did not see the name free: what is there may be anyone's.
		log.LogAttrs(ctx, slog.LevelWarn, "btp create outcome unknown and a credential of this name exists; not deleting it, since the caller does not own the name")
		return ambiguousError(spec, corr, errors.New("a credential of this name exists and may not be ours"))
	}
	log.LogAttrs(ctx, slog.LevelWarn, "btp create had happened but its secret is lost, deleting and creating again")
	if derr := c.delete(ctx, spec.Scope, spec.Name, corr); derr != nil && !errors.Is(derr, approval.ErrNotFound) {
		return ambiguousError(spec, corr, derr)
	}
	return nil
}

// discard deletes a credential we will not hand out; failures are logged, as
// the caller already has a more important error.
func (c *Client) discard(ctx context.Context, spec approval.CredentialSpec, corr, why string) {
	if err := c.delete(ctx, spec.Scope, spec.Name, corr); err != nil && !errors.Is(err, approval.ErrNotFound) {
		c.log.LogAttrs(ctx, slog.LevelError, "btp could not delete an unusable credential; delete it by hand",
			slog.String("reason", why), slog.String("scope", spec.Scope.String()), slog.String("name", spec.Name),
			slog.String("correlation_id", corr), slog.String("error", err.Error()))
	}
}

func (c *Client) createOnce(ctx context.Context, spec approval.CredentialSpec, corr string) (approval.Issued, error) {
	cl := c.command("create", spec.Scope, spec.Name, corr, map[string]string{
		"name":        spec.Name,
		"readOnly":    strconv.FormatBool(spec.ReadOnly),
		"certificate": spec.Certificate,
	})
	cl.once = true
	resp, err := c.do(ctx, cl)
	if err != nil {
		return approval.Issued{}, err
	}
	issued, err := decodeIssued(resp.body, spec.Scope)
	if err != nil {
		e := c.newError(cl)
		e.StatusCode, e.BackendStatus, e.Err, e.Message = resp.status, 0, ErrProtocol, err.Error()
		// A credential we cannot hand out must not linger.
		c.discard(ctx, spec, corr, "undecodable create response")
		return approval.Issued{}, e
	}
	if issued.Credential.Name == "" {
		issued.Credential.Name = spec.Name
	}
	return issued, nil
}

// Get returns the metadata of one credential; a missing one is an error that
// matches approval.ErrNotFound.
func (c *Client) Get(ctx context.Context, scope approval.Scope, name string) (approval.Credential, error) {
	return c.get(ctx, scope, name, newCorrelationID())
}

func (c *Client) get(ctx context.Context, scope approval.Scope, name, corr string) (approval.Credential, error) {
	if err := c.checkScope(scope); err != nil {
		return approval.Credential{}, localError("get", scope, name, corr, err)
	}
	if err := approval.ValidateName(name); err != nil {
		return approval.Credential{}, localError("get", scope, name, corr, err)
	}
	// readOnly "false" mirrors the recorded traffic; the server ignores it.
	cl := c.command("get", scope, name, corr, map[string]string{"name": name, "readOnly": "false"})
	resp, err := c.do(ctx, cl)
	if err != nil {
		return approval.Credential{}, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &fields); err != nil {
		e := c.newError(cl)
		e.StatusCode, e.Err, e.Message = resp.status, ErrProtocol, "get response is not a JSON object"
		return approval.Credential{}, e
	}
	cred := decodeCredential(fields, scope)
	if cred.Name == "" {
		cred.Name = name
	}
	return cred, nil
}

// List returns the metadata of every API credential in scope.
func (c *Client) List(ctx context.Context, scope approval.Scope) ([]approval.Credential, error) {
	corr := newCorrelationID()
	if err := c.checkScope(scope); err != nil {
		return nil, localError("list", scope, "", corr, err)
	}
	cl := c.command("list", scope, "", corr, nil)
	resp, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	items, err := decodeList(resp.body)
	if err != nil {
		e := c.newError(cl)
		e.StatusCode, e.Err, e.Message = resp.status, ErrProtocol, err.Error()
		return nil, e
	}
	out := make([]approval.Credential, 0, len(items))
	for _, it := range items {
		out = append(out, decodeCredential(it, scope))
	}
	return out, nil
}

// Delete removes a credential by name; deletion by client id does not exist,
// since the client id is shared by all credentials of a scope and access level.
// A missing name is an error that matches approval.ErrNotFound.
func (c *Client) Delete(ctx context.Context, scope approval.Scope, name string) error {
	return c.delete(ctx, scope, name, newCorrelationID())
}

func (c *Client) delete(ctx context.Context, scope approval.Scope, name, corr string) error {
	if err := c.checkScope(scope); err != nil {
		return localError("delete", scope, name, corr, err)
	}
	if err := approval.ValidateName(name); err != nil {
		return localError("delete", scope, name, corr, err)
	}
	cl := c.command("delete", scope, name, corr, map[string]string{"name": name, "readOnly": "false"})
	if _, err := c.do(ctx, cl); err != nil {
		return err
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "btp api-credential deleted",
		slog.String("scope", scope.String()), slog.String("name", name), slog.String("correlation_id", corr))
	return nil
}

// decodeList accepts a bare array or the accounts-style {"value":[...]}.
func decodeList(body []byte) ([]map[string]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil
	}
	var items []map[string]json.RawMessage
	if body[0] == '[' {
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, fmt.Errorf("list response: %w", err)
		}
		return items, nil
	}
	var wrapped struct {
		Value []map[string]json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &wrapped); err != nil {
		return nil, fmt.Errorf("list response is neither an array nor {\"value\":[...]}: %w", err)
	}
	return wrapped.Value, nil
}

// str reads the first of keys that holds a JSON string.
func str(fields map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		if raw, ok := fields[k]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil && s != "" {
				return s
			}
		}
	}
	return ""
}

// boolean reads a JSON bool, tolerating "true"/"false" strings.
func boolean(fields map[string]json.RawMessage, key string) bool {
	raw, ok := fields[key]
	if !ok {
		return false
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		b, _ = strconv.ParseBool(s)
	}
	return b
}

// decodeCredential maps create, get and list items alike: create spells the
// client id clientid, get clientId.
func decodeCredential(fields map[string]json.RawMessage, scope approval.Scope) approval.Credential {
	return approval.Credential{
		Name:     str(fields, "name"),
		Scope:    scope,
		ReadOnly: boolean(fields, "read-only"),
		Type:     str(fields, "credential-type"),
		ClientID: str(fields, "clientid", "clientId", "clientID"),
		TokenURL: str(fields, "tokenurl", "tokenUrl"),
		APIURL:   str(fields, "apiurl", "apiUrl"),
		URL:      str(fields, "url"),
		CertURL:  str(fields, "certurl", "certUrl"),
	}
}

// isCertificateType recognises "client certificate" and any future spelling of
// a certificate credential.
func isCertificateType(t string) bool {
	return strings.Contains(strings.ToLower(t), "certificate")
}

// decodeIssued reads a create response. Its errors never quote the body, which
// holds the secret.
func decodeIssued(body []byte, scope approval.Scope) (approval.Issued, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return approval.Issued{}, errors.New("create response is not a JSON object")
	}
	cred := decodeCredential(fields, scope)
	secret := str(fields, "clientsecret", "clientSecret")
	cert, key := str(fields, "certificate"), str(fields, "key")
	var s approval.Secret
	switch {
	case isCertificateType(cred.Type) || (secret == "" && cert != ""):
		if cert == "" && key == "" {
			return approval.Issued{}, errors.New("certificate credential created without certificate or key")
		}
		s = approval.NewCertificateSecret(cert, key)
	case secret != "":
		s = approval.NewClientSecret(secret)
	default:
		t := cred.Type
		if t != TypeSecret && t != TypeBindingSecret && t != TypeClientCertificate {
			t = "unrecognised" // never echo the body of a create
		}
		return approval.Issued{}, fmt.Errorf("credential of type %q created without a secret", t)
	}
	if cred.Type == "" {
		cred.Type = TypeSecret
		if secret == "" {
			cred.Type = TypeClientCertificate
		}
	}
	return approval.Issued{Credential: cred, Secret: s}, nil
}

// ValidateCertificate checks that v is PEM holding one or more X.509
// certificates and nothing else, before the server is asked (it would answer
// backend 400 "The certificate is not valid PEM format."). A private key in
// the text is refused outright: it must never be sent anywhere.
func ValidateCertificate(v string) error {
	rest := []byte(v)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return fmt.Errorf("%w: the certificate text contains a private key; send only the certificate", approval.ErrInvalid)
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("%w: unexpected PEM block %q, want CERTIFICATE", approval.ErrInvalid, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("%w: certificate: %v", approval.ErrInvalid, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: the certificate is not valid PEM format", approval.ErrInvalid)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return fmt.Errorf("%w: text after the last PEM certificate", approval.ErrInvalid)
	}
	return nil
}
