package blockkit

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscapeMakesMentionsInert(t *testing.T) {
	got := Escape("<!channel> <@U123> *bold* & <https://evil.example|click>")
	want := "&lt;!channel&gt; &lt;@U123&gt; *bold* &amp; &lt;https://evil.example|click&gt;"
	if got != want {
		t.Fatalf("escape = %q, want %q", got, want)
	}
}

func TestChunksLoseNothingAndCutOnRunes(t *testing.T) {
	for _, s := range []string{"", "a", strings.Repeat("é", 1000), strings.Repeat("ab€", 777)} {
		parts := Chunks(s, 550)
		if strings.Join(parts, "") != s {
			t.Fatalf("chunks lost data of %q…", s[:min(len(s), 10)])
		}
		for _, p := range parts {
			if len(p) > 550 || !utf8.ValidString(p) {
				t.Fatalf("bad chunk of %d bytes (valid %v)", len(p), utf8.ValidString(p))
			}
		}
	}
}
