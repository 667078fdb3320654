package ca

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
)

func names(b Bundle) string {
	var out []string
	for _, c := range b.Certs() {
		out = append(out, c.Subject.CommonName)
	}
	return strings.Join(out, ",")
}

func TestBundle(t *testing.T) {
	a := mkCA(t, nil, caSpec{cn: "a"}).cert
	b := mkCA(t, nil, caSpec{cn: "b"}).cert
	c := mkCA(t, nil, caSpec{cn: "c"}).cert
	for _, tc := range []struct {
		name string
		got  Bundle
		want string
	}{
		{"dedupe keeps first", NewBundle(a, b, a, nil, c, b), "a,b,c"},
		{"with appends", NewBundle(a).With(b), "a,b"},
		{"with present is unchanged", NewBundle(a, b).With(a), "a,b"},
		{"without", NewBundle(a, b, c).Without(b), "a,c"},
		{"without absent", NewBundle(a).Without(b), "a"},
		{"front moves", NewBundle(a, b, c).Front(c), "c,a,b"},
		{"front adds", NewBundle(a, b).Front(c), "c,a,b"},
	} {
		if got := names(tc.got); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	orig := NewBundle(a, b)
	_ = orig.Without(a).Front(c).With(a)
	if names(orig) != "a,b" {
		t.Errorf("operations modified the receiver: %s", names(orig))
	}
	pemBytes := NewBundle(b, a).PEM()
	parsed, err := parseCerts(pemBytes)
	if err != nil || len(parsed) != 2 || !bytes.Equal(parsed[0].Raw, b.Raw) {
		t.Errorf("PEM does not keep the order: %v", err)
	}
	if !NewBundle(a, b).Equal(NewBundle(a, b)) || NewBundle(a, b).Equal(NewBundle(b, a)) {
		t.Error("Equal ignores order or content")
	}
	if _, err := b.Verify(x509.VerifyOptions{Roots: NewBundle(a, b).Pool(), CurrentTime: t0}); err != nil {
		t.Errorf("Pool does not hold the roots: %v", err)
	}
}

func TestRotationCycle(t *testing.T) {
	old := mkCA(t, nil, caSpec{cn: "old"}).cert
	next := mkCA(t, nil, caSpec{cn: "new"}).cert
	r := NewRotation(old, NewBundle(old))
	steps := []struct {
		name    string
		step    func(Rotation) (Rotation, error)
		phase   Phase
		issuing string
		trusted string
		staged  string
	}{
		{"stage: new trusted alongside old", func(r Rotation) (Rotation, error) { return r.Stage(next) }, NewRootTrusted, "old", "old,new", "new"},
		{"promote: issue under new, old still trusted", Rotation.Promote, NewRootIssuing, "new", "new,old", ""},
		{"retire: old dropped", Rotation.Retire, Stable, "new", "new", ""},
	}
	if r.Phase() != Stable {
		t.Fatalf("initial phase %s", r.Phase())
	}
	for _, s := range steps {
		var err error
		if r, err = s.step(r); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		staged := ""
		if r.Staged != nil {
			staged = r.Staged.Subject.CommonName
		}
		if r.Phase() != s.phase || r.Issuing.Subject.CommonName != s.issuing || names(r.Trusted) != s.trusted || staged != s.staged {
			t.Errorf("%s: phase %s issuing %s trusted %s staged %q; want %s %s %s %q",
				s.name, r.Phase(), r.Issuing.Subject.CommonName, names(r.Trusted), staged, s.phase, s.issuing, s.trusted, s.staged)
		}
		if err := r.Check(); err != nil {
			t.Errorf("%s: invariant: %v", s.name, err)
		}
	}
}

func TestRotationRefusals(t *testing.T) {
	old := mkCA(t, nil, caSpec{cn: "old"}).cert
	next := mkCA(t, nil, caSpec{cn: "new"}).cert
	third := mkCA(t, nil, caSpec{cn: "third"}).cert
	leaf := mkCA(t, nil, caSpec{cn: "leaf", notCA: true}).cert
	stable := NewRotation(old, NewBundle(old))
	staged, _ := stable.Stage(next)
	promoted, _ := staged.Promote()
	for _, tc := range []struct {
		name string
		do   func() (Rotation, error)
		err  string
	}{
		{"stage twice", func() (Rotation, error) { return staged.Stage(third) }, "phase new-root-trusted"},
		{"stage before retiring", func() (Rotation, error) { return promoted.Stage(third) }, "phase new-root-issuing"},
		{"stage the issuing root", func() (Rotation, error) { return stable.Stage(old) }, "already the issuing root"},
		{"stage a non-CA", func() (Rotation, error) { return stable.Stage(leaf) }, "not a CA"},
		{"promote with nothing staged", stable.Promote, "nothing staged"},
		{"retire while staged", staged.Retire, "promote it before"},
		{"retire with one root", stable.Retire, "no old root"},
		{"broken state: issuing not first", func() (Rotation, error) {
			return Rotation{Issuing: old, Trusted: NewBundle(next, old)}.Promote()
		}, "not first"},
		{"broken state: staged not last", func() (Rotation, error) {
			return Rotation{Issuing: old, Staged: next, Trusted: NewBundle(old, next, third)}.Promote()
		}, "not last"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.do(); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error containing %q", err, tc.err)
			}
		})
	}
}
