package route

import "testing"

// TestEqualRetryPoliciesShared: routes of a table with equal retry
// policies (Istio gives every route the same default) share one compiled
// policy; a different policy gets its own, and the compile-time index is
// not kept.
func TestEqualRetryPoliciesShared(t *testing.T) {
	tbl, err := Compile(parseRC(t, `{"name":"80","virtual_hosts":[
	  {"name":"a","domains":["a"],"routes":[
	    {"name":"a1","match":{"prefix":"/1"},"route":{"cluster":"a","retry_policy":{"retry_on":"connect-failure","num_retries":2}}},
	    {"name":"a2","match":{"prefix":"/"},"route":{"cluster":"a","retry_policy":{"retry_on":"connect-failure","num_retries":2}}}]},
	  {"name":"b","domains":["b"],"routes":[
	    {"name":"b2","match":{"prefix":"/x"},"route":{"cluster":"b","retry_policy":{"retry_on":"5xx","num_retries":2}}},
	    {"name":"b1","match":{"prefix":"/"},"route":{"cluster":"b","retry_policy":{"retry_on":"connect-failure","num_retries":2}}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	retry := func(host, path string) *RetryPolicy {
		t.Helper()
		rt := tbl.Match(req("GET", host, path))
		if rt == nil {
			t.Fatalf("%s%s matched nothing", host, path)
		}
		return rt.Action.(*Forward).Retry
	}
	a1, a2, b1, b2 := retry("a", "/1"), retry("a", "/2"), retry("b", "/"), retry("b", "/x")
	if a1 == nil || a1 != a2 || a1 != b1 {
		t.Errorf("equal policies not shared: %p %p %p", a1, a2, b1)
	}
	if b2 == a1 || !b2.On.Has(Retry5xx) || a1.On.Has(Retry5xx) {
		t.Errorf("different policy shared or wrong: %+v / %+v", a1, b2)
	}
	if tbl.retries != nil {
		t.Error("compile-time retry index kept in the table")
	}
}
