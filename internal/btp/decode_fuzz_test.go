package btp

import (
	"net/http"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/approval"
)

// FuzzDecodeResponses feeds arbitrary bodies to every decoder of server
// answers: none may panic, and no error text may quote the body of a create,
// which is where secrets live.
func FuzzDecodeResponses(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","credential-type":"secret","clientid":"sb-x!a1","clientsecret":"SECRETVALUE","read-only":false}`,
		`{"name":"c","credential-type":"client certificate","certificate":"-----BEGIN","key":"SECRETVALUE"}`,
		`[{"name":"a","clientId":"x"}]`, `{"value":[{"name":"b"}]}`, `{"error":"The certificate is not valid PEM format."}`,
		`{"error":{"code":11006,"message":"slow down"}}`, ``, `null`, `{"read-only":"true"}`,
	} {
		f.Add(seed)
	}
	scope := approval.Scope{Kind: approval.ScopeSubaccount, ID: "11111111-2222-4333-8444-555555555555"}
	f.Fuzz(func(t *testing.T, body string) {
		if _, err := decodeIssued([]byte(body), scope); err != nil && strings.Contains(body, "SECRETVALUE") &&
			strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("decode error quotes the body: %v", err)
		}
		_, _ = decodeList([]byte(body))
		_ = errorMessage(&response{status: 200, header: http.Header{}, body: []byte(body)})
	})
}
