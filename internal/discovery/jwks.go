package discovery

import (
	"time"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// jwksChanged is the key resolver's OnChange: a refreshed, new or dropped
// key set changes the JWT filter of every proxy whose RequestAuthentication
// names a jwksUri. The push is scoped by changed configuration, so each
// such RequestAuthentication is recorded as changed: a push with an empty
// change set would reach no proxy, and rotated keys would wait for an
// unrelated configuration change.
func (s *Server) jwksChanged() {
	now := time.Now()
	for _, c := range s.store.List(schema.RequestAuthentication, "") {
		if len(model.JWKSURIs([]config.Config{c})) == 0 {
			continue
		}
		k := c.Key()
		s.changes.add(true, &k, nil, "jwks", now)
	}
}
