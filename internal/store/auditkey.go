package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// AuditKeys MAC the audit trail (HMAC-SHA-256). Redis never sees them, so
// whoever can write to Redis can delete or reorder entries but cannot forge
// one, nor rebuild the chain after an edit.
//
// The first key MACs new entries; the others only verify old ones, so that
// CREDBOT_AUDIT_KEY rotates like CREDBOT_SECRET_KEY: put the new key first and
// keep the old ones after it for as long as entries MAC'd under them are kept.
// Every MAC names its key ("<key id>:<hex>"); the id is a hash of the key,
// never the key.
type AuditKeys struct{ keys []auditKey }

type auditKey struct {
	id  string
	key []byte
}

// ErrAuditKey means CREDBOT_AUDIT_KEY is malformed.
var ErrAuditKey = errors.New("invalid audit key")

// NewAuditKeys takes the current 32-byte key, then any previous ones.
func NewAuditKeys(current []byte, previous ...[]byte) (*AuditKeys, error) {
	k := &AuditKeys{}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != 32 {
			return nil, fmt.Errorf("%w: audit key %d must be 32 bytes, got %d", ErrAuditKey, i+1, len(key))
		}
		sum := sha256.Sum256(append([]byte("credbot audit key id\x00"), key...))
		k.keys = append(k.keys, auditKey{id: hex.EncodeToString(sum[:4]), key: append([]byte(nil), key...)})
	}
	return k, nil
}

// ParseAuditKey decodes CREDBOT_AUDIT_KEY: the current key, then optionally
// previous ones, comma-separated, each base64 of 32 bytes.
func ParseAuditKey(v string) (*AuditKeys, error) {
	var keys [][]byte
	for i, b64 := range strings.Split(v, ",") {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("%w: audit key %d is not base64", ErrAuditKey, i+1)
		}
		keys = append(keys, key)
	}
	return NewAuditKeys(keys[0], keys[1:]...)
}

// RandomAuditKeys returns a throw-away key: for local mode and tests, whose
// trail is verified by the process that wrote it.
func RandomAuditKeys() *AuditKeys {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	k, _ := NewAuditKeys(b)
	return k
}

// KeyID names the current key, without revealing it.
func (k *AuditKeys) KeyID() string { return k.keys[0].id }

// The MAC'd messages, each with its own label so that a MAC of one kind is
// never valid as another. Fields are NUL-separated: none can hold a NUL (ids
// and MACs are hex, the entry is JSON, which escapes control characters).
const (
	labelEntry   = "credbot audit entry v1"
	labelHead    = "credbot audit head v1"
	labelGenesis = "credbot audit genesis v1"
)

// sign MACs fields under the current key.
func (k *AuditKeys) sign(label string, fields ...string) string {
	return k.keys[0].id + ":" + mac(k.keys[0].key, label, fields)
}

// check reports whether m is a MAC of fields under one of the keys, and
// errUnknownAuditKey when it names a key this verifier does not hold.
func (k *AuditKeys) check(m, label string, fields ...string) (bool, error) {
	id, sum, ok := strings.Cut(m, ":")
	if !ok {
		return false, nil
	}
	for _, key := range k.keys {
		if key.id == id {
			return hmac.Equal([]byte(sum), []byte(mac(key.key, label, fields))), nil
		}
	}
	return false, fmt.Errorf("%w %s", errUnknownAuditKey, id)
}

var errUnknownAuditKey = errors.New("MAC'd under a key this verifier does not hold: key id")

func mac(key []byte, label string, fields []string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	for _, f := range fields {
		h.Write([]byte{0})
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// entryMAC covers the chain, the sequence number, the previous entry's MAC
// and the entry.
func (k *AuditKeys) entryMAC(chain string, seq int64, prev, entry string) string {
	return k.sign(labelEntry, chain, strconv.FormatInt(seq, 10), prev, entry)
}
