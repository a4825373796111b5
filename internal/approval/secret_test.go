package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretRedactsEverywhere(t *testing.T) {
	const plain = "0f0f-aaaa$FAKEsecret="
	sec := NewClientSecret(plain)
	issued := Issued{Credential: Credential{Name: "n"}, Secret: sec}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("issued", "secret", sec, "issued", issued)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("issued", "secret", sec, "issued", issued)
	js, _ := json.Marshal(issued)
	outputs := []string{
		fmt.Sprint(sec), fmt.Sprintf("%v %+v %#v %s %q %x", sec, sec, sec, sec, sec, sec),
		fmt.Sprintf("%v %+v %#v", issued, issued, &issued), string(js), logs.String(),
		fmt.Errorf("wrapped: %v", sec).Error(),
	}
	for _, o := range outputs {
		if strings.Contains(o, plain) || strings.Contains(o, "FAKEsecret") {
			t.Errorf("secret printed: %s", o)
		}
	}
	if !strings.Contains(logs.String(), redacted) {
		t.Errorf("logs do not show the redaction marker: %s", logs.String())
	}
}

func TestSealerRoundTripBindsRequestID(t *testing.T) {
	s, err := ParseSealerKey(NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	sec := NewCertificateSecret("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n", "key-material")
	sealed, err := s.Seal("r1", sec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("key-material")) {
		t.Fatal("sealed bytes contain the plaintext")
	}
	got, err := s.Open("r1", sealed)
	if err != nil || got != sec {
		t.Fatalf("Open = %v, %v", got, err)
	}
	if _, err := s.Open("r2", sealed); err == nil {
		t.Fatal("a secret sealed for r1 opened as r2")
	}
	other, _ := ParseSealerKey(NewRandomKey())
	if _, err := other.Open("r1", sealed); err == nil {
		t.Fatal("opened with the wrong key")
	}
	if _, err := ParseSealerKey("c2hvcnQ="); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short key: %v", err)
	}
}

func TestSealerRotatesKeysAndNamesTheKeyThatSealed(t *testing.T) {
	oldKey, newKey := NewRandomKey(), NewRandomKey()
	before, _ := ParseSealerKey(oldKey)
	sec := NewClientSecret("s3cr3t")
	sealed, err := before.Seal("r1", sec)
	if err != nil {
		t.Fatal(err)
	}
	// Rotated: the new key seals, the old one still opens what it sealed.
	after, err := ParseSealerKey(newKey + ", " + oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := after.Open("r1", sealed); err != nil || got != sec {
		t.Fatalf("Open after rotation = %v, %v", got, err)
	}
	fresh, _ := after.Seal("r2", sec)
	if fresh[0] != sealVersion || string(fresh[1:5]) == string(sealed[1:5]) {
		t.Fatal("new values do not name the new key")
	}
	if after.KeyID() == before.KeyID() || strings.Contains(after.KeyID(), newKey) {
		t.Fatalf("key ids %s / %s", before.KeyID(), after.KeyID())
	}
	// The old key dropped too soon: Open says so, naming the key it lacks.
	only, _ := ParseSealerKey(newKey)
	if _, err := only.Open("r1", sealed); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), before.KeyID()) {
		t.Fatalf("Open without the sealing key = %v, want ErrUnknownKey naming %s", err, before.KeyID())
	}
	if _, err := ParseSealerKey(newKey + ",not base64!"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad previous key: %v", err)
	}
}

func TestScopeValidation(t *testing.T) {
	good := []Scope{{ScopeSubaccount, "11111111-2222-4333-8444-555555555555"}, {ScopeDirectory, "22222222-3333-4444-8555-666666666666"}, {ScopeGlobalAccount, "acme-ga"}}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%v: %v", s, err)
		}
		if back, err := ParseScope(s.String()); err != nil || back != s {
			t.Errorf("ParseScope(%q) = %v, %v", s.String(), back, err)
		}
	}
	bad := []Scope{{ScopeSubaccount, "acme"}, {ScopeGlobalAccount, "Acme_GA"}, {ScopeGlobalAccount, "-x"}, {"tenant", "x"}, {ScopeDirectory, "11111111-2222-4333-8444-555555555555/../x"}}
	for _, s := range bad {
		if err := s.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v accepted", s)
		}
	}
}
