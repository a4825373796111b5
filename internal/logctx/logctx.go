// Package logctx carries log attributes in a context, so that every line
// logged about one piece of work says which: the user, the Slack trigger or
// action, the request. The lifecycle and the Slack side add what they know;
// the process's handler (Handler) writes them on each line logged with that
// context.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns ctx carrying attrs (key-value pairs, as slog takes them) on
// top of those it carries already. Empty string values are left out.
func With(ctx context.Context, args ...any) context.Context {
	prev, _ := ctx.Value(key{}).([]slog.Attr)
	attrs := append([]slog.Attr(nil), prev...)
	for _, a := range argsToAttrs(args) {
		if a.Value.Kind() == slog.KindString && a.Value.String() == "" {
			continue
		}
		attrs = append(attrs, a)
	}
	return context.WithValue(ctx, key{}, attrs)
}

func argsToAttrs(args []any) []slog.Attr {
	var out []slog.Attr
	for len(args) > 1 {
		k, ok := args[0].(string)
		if !ok {
			break
		}
		out = append(out, slog.Any(k, args[1]))
		args = args[2:]
	}
	return out
}

// Handler wraps h so that records logged with a context made by With carry
// its attributes (after the record's own, so that a line's own value of the
// same key, if any, comes first).
func Handler(h slog.Handler) slog.Handler { return handler{h} }

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(key{}).([]slog.Attr); ok && len(attrs) > 0 {
		seen := map[string]bool{}
		r.Attrs(func(a slog.Attr) bool { seen[a.Key] = true; return true })
		for _, a := range attrs {
			if !seen[a.Key] {
				r.AddAttrs(a)
			}
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs)}
}

func (h handler) WithGroup(name string) slog.Handler { return handler{h.Handler.WithGroup(name)} }
