package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRunUsage(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		status int
		want   string
	}{
		{"no args", nil, 2, "usage: bookinfo productpage|details|reviews|ratings"},
		{"help", []string{"--help"}, 0, "usage: bookinfo"},
		{"role help", []string{"productpage", "-h"}, 0, "-reviews-url"},
		{"unknown role", []string{"web"}, 2, `bookinfo: unknown role "web"`},
		{"bad version", []string{"reviews", "--version", "v7"}, 2, `bookinfo: reviews: --version "v7": must be v1, v2 or v3`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			if got := run(context.Background(), tc.args, env(nil), &out); got != tc.status {
				t.Errorf("run(%q) = %d, want %d; output:\n%s", tc.args, got, tc.status, out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("run(%q) output lacks %q:\n%s", tc.args, tc.want, out.String())
			}
		})
	}
}

// TestRunServesUntilCancelled runs the command as a process would: it
// serves on the given address until the context (the signal) ends.
func TestRunServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // free the port for the command; a race with another process is unlikely on loopback

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out strings.Builder
	go func() {
		done <- run(ctx, []string{"ratings", "--listen", addr}, env(map[string]string{"BOOKINFO_DEBUG": "1"}), &out)
	}()

	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := c.Get("http://" + addr + "/ratings/1")
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET /ratings/1: %d", res.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ratings never answered on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.CloseIdleConnections()
	cancel()
	select {
	case status := <-done:
		if status != 0 {
			t.Errorf("exit status %d, want 0", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
