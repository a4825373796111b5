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

// Escape allocates only for its answer: it built a Replacer, and with it its
// lookup table of several kilobytes, on every call, a tenth of all the bot
// allocated in a load run.
func TestEscapeAllocatesOnlyItsAnswer(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Escape("ci-payments for the nightly build") }); n != 0 {
		t.Errorf("escaping text with nothing to escape allocated %.0f times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Escape("a <b> & c") }); n > 2 {
		t.Errorf("escaping allocated %.0f times, want at most 2 (its buffer and the answer)", n)
	}
}

func BenchmarkEscape(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Escape("CI pipeline <!channel> & nightly")
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
