package approval

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sealer encrypts one-time secrets at rest with AES-256-GCM. The request id is the
// additional data, so a sealed secret cannot be replayed under another request.
//
// It holds the current key and any previous ones, so that the key can be
// rotated while secrets sealed under the old one wait for their reveal: every
// sealed value starts with a version byte and the id of the key that sealed it
// (a hash of the key, never the key), and Open picks that key.
type Sealer struct{ keys []sealKey }

type sealKey struct {
	id   [4]byte
	aead cipher.AEAD
}

// sealVersion marks a sealed value that names its key.
const sealVersion = 1

// ErrUnknownKey means a sealed secret was sealed under a key this sealer does
// not hold (CREDBOT_SECRET_KEY was rotated without keeping the old key).
var ErrUnknownKey = errors.New("sealed with a key this replica does not have")

// NewSealer takes the current 32-byte key, then any previous ones.
func NewSealer(current []byte, previous ...[]byte) (*Sealer, error) {
	s := &Sealer{}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != 32 {
			return nil, fmt.Errorf("%w: secret key %d must be 32 bytes, got %d", ErrInvalid, i+1, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, sealKey{id: keyID(key), aead: aead})
	}
	return s, nil
}

func keyID(key []byte) [4]byte {
	sum := sha256.Sum256(append([]byte("credbot seal key id\x00"), key...))
	return [4]byte(sum[:4])
}

// ParseSealerKey decodes CREDBOT_SECRET_KEY: the current key, then optionally
// previous ones, comma-separated, each base64 of 32 bytes.
func ParseSealerKey(v string) (*Sealer, error) {
	var keys [][]byte
	for i, b64 := range strings.Split(v, ",") {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("%w: secret key %d is not base64", ErrInvalid, i+1)
		}
		keys = append(keys, key)
	}
	return NewSealer(keys[0], keys[1:]...)
}

// NewRandomKey returns a fresh base64 key, for local mode only.
func NewRandomKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// KeyID names the current key in logs and in /readyz, without revealing it.
func (s *Sealer) KeyID() string { return hex.EncodeToString(s.keys[0].id[:]) }

// Seal encrypts s for request id under the current key.
func (s *Sealer) Seal(id string, sec Secret) ([]byte, error) {
	k := s.keys[0]
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append([]byte{sealVersion}, k.id[:]...)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, sec.Plaintext(), []byte(id)), nil
}

// Open decrypts a sealed secret of request id with the key that sealed it.
func (s *Sealer) Open(id string, sealed []byte) (Secret, error) {
	if len(sealed) > 5 && sealed[0] == sealVersion {
		for _, k := range s.keys {
			if bytes.Equal(sealed[1:5], k.id[:]) {
				return open(k.aead, id, sealed[5:])
			}
		}
	}
	// Sealed before values named their key: try each key on the whole value.
	for _, k := range s.keys {
		if sec, err := open(k.aead, id, sealed); err == nil {
			return sec, nil
		}
	}
	if len(sealed) > 5 && sealed[0] == sealVersion {
		return Secret{}, fmt.Errorf("approval: %w (key id %x; this replica has %s)", ErrUnknownKey, sealed[1:5], s.ids())
	}
	return Secret{}, fmt.Errorf("approval: %w (this replica has %s)", ErrUnknownKey, s.ids())
}

func (s *Sealer) ids() string {
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = hex.EncodeToString(k.id[:])
	}
	return "key ids " + strings.Join(ids, ", ")
}

func open(aead cipher.AEAD, id string, sealed []byte) (Secret, error) {
	n := aead.NonceSize()
	if len(sealed) < n {
		return Secret{}, errors.New("approval: sealed secret too short")
	}
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		return Secret{}, errors.New("approval: sealed secret does not open with this key")
	}
	return SecretFromPlaintext(pt)
}
