package rbac

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// Action is what an engine does with a matching request.
type Action uint8

// Actions, as rbacv3.RBAC_Action.
const (
	Allow Action = iota
	Deny
	Log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	}
	return "LOG"
}

// Metadata is dynamic metadata by filter name ("envoy.filters.http.jwt_authn"),
// each a JSON-like tree: string, float64, bool, nil, []any, map[string]any.
type Metadata map[string]map[string]any

// Input is what a policy can look at: one request (Request set) or one
// connection (Request nil). The evaluator only reads it.
type Input struct {
	// Request is the HTTP request as routing sees it (normalised path and
	// authority, lower-case header access); nil at L4.
	Request *route.Request
	// Destination is the downstream local (original destination) address.
	Destination netip.AddrPort
	// DirectRemote is the downstream peer's address.
	DirectRemote netip.AddrPort
	// Remote is the original client address (x-forwarded-for as the
	// connection manager trusts it); invalid means DirectRemote.
	Remote netip.Addr
	// SNI is the TLS server name of the connection, "" for none.
	SNI string
	// Authenticated reports a verified peer certificate (mutual TLS).
	Authenticated bool
	// PeerCert is the verified peer's leaf certificate, when known.
	PeerCert *x509.Certificate
	// PeerIdentity is the verified peer's first URI SAN; used when
	// PeerCert is nil.
	PeerIdentity string
	// Metadata is the request's dynamic metadata (nil: none).
	Metadata Metadata

	// urlPath is Request.Path without query and fragment, set by Evaluate.
	urlPath  string
	prepared *route.Request
	// surely selects how ambiguous attributes (a header sent several
	// times or as a list) are read: false, a rule matches when any reading
	// matches (DENY and LOG engines); true, only when every reading does
	// (ALLOW engines). not_rule and not_id flip it. See headerRule.
	surely bool
}

// prepare computes what several rules read, once per evaluation.
func (in *Input) prepare() {
	if in.Request != nil && in.prepared != in.Request {
		in.urlPath = pathOnly(in.Request.Path)
		in.prepared = in.Request
	}
}

func (in *Input) remote() netip.Addr {
	if in.Remote.IsValid() {
		return in.Remote
	}
	return in.DirectRemote.Addr()
}

// Decision is the result of one evaluation.
type Decision struct {
	// Allowed is the engine's verdict (always true for LOG engines).
	Allowed bool
	// Policy is the name of the first matching policy (in name order),
	// "" when none matched.
	Policy string
}

// Matched reports whether a policy matched.
func (d Decision) Matched() bool { return d.Policy != "" }

// Engine is a compiled RBAC policy set. It is immutable and safe for
// concurrent use.
type Engine struct {
	action   Action
	policies []policy
}

type policy struct {
	name       string
	perms      []matcher
	principals []matcher
}

// MaxDepth bounds the nesting of and/or/not rules a policy may have.
const MaxDepth = 64

// Compile builds an engine from an RBAC config. It validates the config
// (PGV rules) and rejects what the engine does not implement.
func Compile(r *rbacv3.RBAC) (*Engine, error) {
	if r == nil {
		return nil, errors.New("nil RBAC")
	}
	if err := pgv.ValidateAll(r); err != nil {
		return nil, err
	}
	if len(r.GetAuditLoggingOptions().GetLoggerConfigs()) > 0 {
		return nil, errors.New("audit_logging_options: RBAC audit loggers are not supported")
	}
	e := &Engine{}
	switch r.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.action = Allow
	case rbacv3.RBAC_DENY:
		e.action = Deny
	case rbacv3.RBAC_LOG:
		e.action = Log
	default:
		return nil, fmt.Errorf("action %v is not supported", r.GetAction())
	}
	names := make([]string, 0, len(r.GetPolicies()))
	for name := range r.GetPolicies() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := r.GetPolicies()[name]
		if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
			return nil, fmt.Errorf("policy %q: CEL conditions are not supported", name)
		}
		cp := policy{name: name}
		for i, perm := range p.GetPermissions() {
			m, err := compilePermission(perm, 0)
			if err != nil {
				return nil, fmt.Errorf("policy %q: permissions[%d]: %w", name, i, err)
			}
			cp.perms = append(cp.perms, m)
		}
		for i, pr := range p.GetPrincipals() {
			m, err := compilePrincipal(pr, 0)
			if err != nil {
				return nil, fmt.Errorf("policy %q: principals[%d]: %w", name, i, err)
			}
			cp.principals = append(cp.principals, m)
		}
		e.policies = append(e.policies, cp)
	}
	return e, nil
}

// Action returns the engine's action.
func (e *Engine) Action() Action { return e.action }

// Len returns the number of policies.
func (e *Engine) Len() int { return len(e.policies) }

// Evaluate decides on one request or connection. It caches derived
// values in in (the query-less path), so an Input must not be evaluated
// from several goroutines at once.
func (e *Engine) Evaluate(in *Input) Decision {
	in.prepare()
	in.surely = e.action == Allow
	matched := ""
	for i := range e.policies {
		if e.policies[i].match(in) {
			matched = e.policies[i].name
			break
		}
	}
	switch e.action {
	case Allow:
		return Decision{Allowed: matched != "", Policy: matched}
	case Deny:
		return Decision{Allowed: matched == "", Policy: matched}
	}
	return Decision{Allowed: true, Policy: matched}
}

func (p *policy) match(in *Input) bool {
	return anyMatch(p.perms, in) && anyMatch(p.principals, in)
}

func anyMatch(ms []matcher, in *Input) bool {
	for _, m := range ms {
		if m.match(in) {
			return true
		}
	}
	return false
}
