package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/credbot/credbot/internal/approval"
	"github.com/redis/go-redis/v9"
)

var (
	//go:embed note.lua
	noteSrc    string
	noteScript = redis.NewScript(noteSrc)
)

// Note implements approval.Store: one audit entry that changes no request
// (a refused attempt, an admin lookup or delete, a policy load, a replica
// start), in the same MAC'd chain as the transitions.
func (s *Store) Note(ctx context.Context, a approval.AuditEntry) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	entry := string(b)
	return s.appendAudit(ctx, entry, auditOp{
		script: noteScript,
		keys:   []string{s.auditKey(), s.auditHeadKey(), s.auditGenesisKey(), s.auditTurnKey()},
		args:   []any{entry},
	})
}
