package strmatch

import (
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		m    *matcherv3.StringMatcher
		in   string
		want bool
	}{
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Admin"}}, "Admin", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Admin"}}, "admin", false},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "Admin"}, IgnoreCase: true}, "ADMIN", true},
		// ASCII folding only, as Envoy: non-ASCII letters must be equal.
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "é"}, IgnoreCase: true}, "É", false},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/API"}, IgnoreCase: true}, "/api/x", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".COM"}, IgnoreCase: true}, "a.com", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "MID"}, IgnoreCase: true}, "a-mid-b", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "a|b"}}}, "ab", false},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "a.*"}}, IgnoreCase: true}, "A", false},
	}
	for _, c := range cases {
		m, err := Compile(c.m, 1024)
		if err != nil {
			t.Fatalf("%v: %v", c.m, err)
		}
		if got := m.Match(c.in); got != c.want {
			t.Errorf("%v on %q = %v, want %v", c.m, c.in, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, m := range []*matcherv3.StringMatcher{
		{},
		{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "a)|(b"}}},
		{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "aaaaaaaaaa"}}},
	} {
		if _, err := Compile(m, 8); err == nil {
			t.Errorf("%v compiled", m)
		}
	}
}
