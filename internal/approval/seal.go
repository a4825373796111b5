package approval

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// Sealer encrypts one-time secrets at rest with AES-256-GCM. The request id is the
// additional data, so a sealed secret cannot be replayed under another request.
type Sealer struct{ aead cipher.AEAD }

// NewSealer takes a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: secret key must be 32 bytes, got %d", ErrInvalid, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// ParseSealerKey decodes CREDBOT_SECRET_KEY (base64 of 32 bytes).
func ParseSealerKey(b64 string) (*Sealer, error) {
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: secret key is not base64", ErrInvalid)
	}
	return NewSealer(key)
}

// NewRandomKey returns a fresh base64 key, for local mode only.
func NewRandomKey() string {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// Seal encrypts s for request id.
func (s *Sealer) Seal(id string, sec Secret) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, sec.Plaintext(), []byte(id)), nil
}

// Open decrypts a sealed secret of request id.
func (s *Sealer) Open(id string, sealed []byte) (Secret, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return Secret{}, errors.New("approval: sealed secret too short")
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		return Secret{}, errors.New("approval: sealed secret does not open with this key")
	}
	return SecretFromPlaintext(pt)
}
