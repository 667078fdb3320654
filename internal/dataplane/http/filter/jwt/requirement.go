package jwt

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
)

// maxRequirementDepth bounds nested requires_any / requires_all.
const maxRequirementDepth = 16

type reqKind uint8

const (
	reqProvider reqKind = iota
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
)

// requirement is a compiled JwtRequirement.
type requirement struct {
	kind      reqKind
	p         *provider
	audiences []string // provider_and_audiences override; nil: the provider's
	children  []*requirement
}

func (f *Filter) compileRequirement(r *jwtv3.JwtRequirement, depth int) (*requirement, error) {
	if depth > maxRequirementDepth {
		return nil, fmt.Errorf("requirements nested deeper than %d", maxRequirementDepth)
	}
	lookup := func(name string) (*provider, error) {
		p, ok := f.providers[name]
		if !ok {
			return nil, fmt.Errorf("unknown provider %q", name)
		}
		return p, nil
	}
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		p, err := lookup(t.ProviderName)
		return &requirement{kind: reqProvider, p: p}, err
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		p, err := lookup(t.ProviderAndAudiences.GetProviderName())
		return &requirement{kind: reqProvider, p: p, audiences: t.ProviderAndAudiences.GetAudiences()}, err
	case *jwtv3.JwtRequirement_RequiresAny, *jwtv3.JwtRequirement_RequiresAll:
		out := &requirement{kind: reqAny}
		list := r.GetRequiresAny().GetRequirements()
		if _, ok := t.(*jwtv3.JwtRequirement_RequiresAll); ok {
			out.kind, list = reqAll, r.GetRequiresAll().GetRequirements()
		}
		for i, c := range list {
			cr, err := f.compileRequirement(c, depth+1)
			if err != nil {
				return nil, fmt.Errorf("requirements[%d]: %w", i, err)
			}
			out.children = append(out.children, cr)
		}
		return out, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return &requirement{kind: reqAllowMissing}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &requirement{kind: reqAllowMissingOrFailed}, nil
	case nil:
		return nil, errors.New("empty requirement")
	}
	return nil, fmt.Errorf("unsupported requirement %T", r.GetRequiresType())
}

// verifiedToken is a token that passed verification, with its provider.
type verifiedToken struct {
	p *provider
	t *token
	f found
}

// evaluation is one request's walk over a requirement tree. Results of a
// provider are computed once and reused where the tree names it again.
type evaluation struct {
	f        *Filter
	r        *http.Request
	query    string
	now      time.Time
	done     map[*provider]Status
	verified []verifiedToken
	buf      [4]found
}

func (ev *evaluation) eval(r *requirement) Status {
	switch r.kind {
	case reqProvider:
		if r.audiences != nil {
			return ev.provider(r.p, r.audiences)
		}
		if st, ok := ev.done[r.p]; ok {
			return st
		}
		st := ev.provider(r.p, r.p.audiences)
		if ev.done == nil {
			ev.done = map[*provider]Status{}
		}
		ev.done[r.p] = st
		return st
	case reqAny:
		// Every child runs (their verified tokens all count, as in Envoy);
		// one success is enough. Of the failures, a real verification
		// error is reported before an unknown issuer, before a missing
		// token.
		pass, worst := false, Missing
		for _, c := range r.children {
			st := c.eval(ev)
			switch {
			case st == OK:
				pass = true
			case rank(st) > rank(worst):
				worst = st
			}
		}
		if pass || len(r.children) == 0 {
			return OK
		}
		return worst
	case reqAll:
		for _, c := range r.children {
			if st := c.eval(ev); st != OK {
				return st
			}
		}
		return OK
	case reqAllowMissing:
		return ev.anyIssuer()
	case reqAllowMissingOrFailed:
		ev.anyIssuer()
		return OK
	}
	return VerificationFailed
}

// eval is a method on requirement for readability at call sites.
func (r *requirement) eval(ev *evaluation) Status { return ev.eval(r) }

func rank(st Status) int {
	switch st {
	case Missing:
		return 0
	case UnknownIssuer:
		return 1
	}
	return 2
}

// provider verifies every token in the provider's locations.
func (ev *evaluation) provider(p *provider, audiences []string) Status {
	toks := extract(ev.r, ev.query, p.locs, ev.buf[:0])
	if len(toks) == 0 {
		return Missing
	}
	// Envoy verifies every token: a good token must not carry a bad one
	// past the filter.
	for _, fd := range toks {
		t, st := parse(fd.raw)
		if st == OK {
			st = ev.verify(p, audiences, t)
		}
		if st != OK {
			return st
		}
		ev.verified = append(ev.verified, verifiedToken{p: p, t: t, f: fd})
	}
	return OK
}

// anyIssuer is allow_missing: no token in any provider's location passes;
// each token found must verify with a provider of its issuer that reads
// that location.
func (ev *evaluation) anyIssuer() Status {
	toks := extract(ev.r, ev.query, ev.f.allLocs, ev.buf[:0])
	if len(toks) == 0 {
		return OK
	}
	for _, fd := range toks {
		t, st := parse(fd.raw)
		if st != OK {
			return st
		}
		var p *provider
		for _, c := range ev.f.order {
			if (c.issuer == "" || c.issuer == t.iss) && containsLoc(c.locs, fd.loc) {
				p = c
				break
			}
		}
		if p == nil {
			return UnknownIssuer
		}
		if st := ev.verify(p, p.audiences, t); st != OK {
			return st
		}
		ev.verified = append(ev.verified, verifiedToken{p: p, t: t, f: fd})
	}
	return OK
}

// verify checks a parsed token against a provider, in Envoy's order.
func (ev *evaluation) verify(p *provider, audiences []string, t *token) Status {
	if p.issuer != "" && t.iss != p.issuer {
		return UnknownIssuer
	}
	if st := t.checkTime(ev.now, p.skew, p.requireExp); st != OK {
		return st
	}
	if st := t.checkAudiences(audiences); st != OK {
		return st
	}
	return t.verifySignature(p.keys)
}
