package btp_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/credbot/credbot/internal/btp"
)

// New reports every bad BTP setting at once, one line each, in a stable order
// (server, protocol, account, login), each naming its variable and what it
// takes: an operator fixes one list, not one setting per restart. The
// password, assertion and key never appear in it.
func TestNewReportsEveryBadSettingAtOnce(t *testing.T) {
	const secret = "hunter2-do-not-show"
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, c := range []struct {
		name string
		cfg  btp.Config
		want []string // one per line, in this order
	}{
		{"password login", btp.Config{
			ServerURL: "cli.btp.cloud.sap", ProtocolVersion: "2.106.1",
			GlobalAccount: "03760ecf-9d89-4189-a92a-1c7efed09298", Password: secret,
		}, []string{
			`BTP_CLI_SERVER_URL "cli.btp.cloud.sap" must be an absolute http(s) URL, like ` + btp.DefaultServerURL,
			`BTP_PROTOCOL_VERSION "2.106.1" must look like ` + btp.DefaultProtocolVersion,
			`BTP_GLOBALACCOUNT "03760ecf-9d89-4189-a92a-1c7efed09298" must be the global account's subdomain`,
			"no login configured: set BTP_USERNAME and BTP_PASSWORD",
		}},
		{"assertion login", btp.Config{
			ServerURL: "ftp://cli.btp.cloud.sap", Assertion: secret,
		}, []string{
			`BTP_CLI_SERVER_URL "ftp://cli.btp.cloud.sap" must be an absolute http(s) URL`,
			"the global account subdomain (BTP_GLOBALACCOUNT) is required",
			"a JWT assertion login needs the custom IdP (BTP_IDP)",
		}},
		{"X.509 login", btp.Config{
			ProtocolVersion: "latest", GlobalAccount: "acme-ga",
			TLSClientCertificate: missing, TLSClientKey: "", TLSIdPURL: "http://ias.example",
		}, []string{
			`BTP_PROTOCOL_VERSION "latest" must look like ` + btp.DefaultProtocolVersion,
			"an X.509 login needs BTP_TLS_CLIENT_CERTIFICATE, BTP_TLS_CLIENT_KEY, BTP_TLS_IDP_URL and BTP_USERNAME",
			`BTP_TLS_IDP_URL "http://ias.example" must be an https URL`,
		}},
		{"X.509 login with unreadable files", btp.Config{
			ServerURL: "https://", GlobalAccount: "acme-ga", Username: "u",
			TLSClientCertificate: missing, TLSClientKey: "-----BEGIN PRIVATE KEY-----\n" + secret + "\n-----END PRIVATE KEY-----\n",
			TLSIdPURL: "https://ias.example",
		}, []string{
			`BTP_CLI_SERVER_URL "https://" must be an absolute http(s) URL`,
			"reading BTP_TLS_CLIENT_CERTIFICATE",
		}},
		{"X.509 key that is neither PEM nor a file", btp.Config{
			GlobalAccount: "acme-ga", Username: "u", TLSIdPURL: "https://ias.example",
			TLSClientCertificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", TLSClientKey: secret,
		}, []string{
			"reading BTP_TLS_CLIENT_KEY",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := btp.New(c.cfg)
			if err == nil {
				t.Fatal("New accepted the settings")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.want) {
				t.Errorf("New reported %d problems, want %d:\n%v", len(lines), len(c.want), err)
			}
			for i, w := range c.want {
				if i >= len(lines) || !strings.HasPrefix(lines[i], "btp: ") || !strings.Contains(lines[i], w) {
					t.Errorf("problem %d is not %q:\n%v", i+1, w, err)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows a secret:\n%v", err)
			}
		})
	}
}
