package discovery

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/server"
)

const sidecarID = "sidecar~10.0.0.9~app-0.default~default.svc.cluster.local"

// adsClient is one ADS stream to the control plane, with a goroutine
// receiving into resps. It is closed when the test ends.
type adsClient struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[discoverypb.DiscoveryRequest, discoverypb.DiscoveryResponse]
	resps  chan *discoverypb.DiscoveryResponse
}

func dialADS(t *testing.T, s *Server) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(s.XDSAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoverypb.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		conn.Close()
		t.Fatal(err)
	}
	c := &adsClient{t: t, stream: stream, resps: make(chan *discoverypb.DiscoveryResponse)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case c.resps <- r:
			case <-ctx.Done():
				return
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		conn.Close()
		wg.Wait()
	})
	return c
}

func (c *adsClient) send(req *discoverypb.DiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("sending %s request: %v", xds.ShortName(req.TypeUrl), err)
	}
}

func (c *adsClient) recv() *discoverypb.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		return r
	case <-time.After(waitFor):
		c.t.Fatalf("no response within %v", waitFor)
		return nil
	}
}

func clusterNames(t *testing.T, r *discoverypb.DiscoveryResponse) []string {
	t.Helper()
	if r.TypeUrl != xds.ClusterType {
		t.Fatalf("response of type %s, want CDS", r.TypeUrl)
	}
	var names []string
	for _, a := range r.Resources {
		var c cluster.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			t.Fatalf("resource %s: %v", a.TypeUrl, err)
		}
		names = append(names, c.Name)
	}
	return names
}

// cdsStatus returns the CDS status of the sidecar's stream.
func cdsStatus(s *Server) (server.TypeStatus, error) {
	clients := s.Clients()
	if len(clients) != 1 {
		return server.TypeStatus{}, fmt.Errorf("%d clients connected, want 1", len(clients))
	}
	if clients[0].ProxyID != sidecarID {
		return server.TypeStatus{}, fmt.Errorf("client %q, want %q", clients[0].ProxyID, sidecarID)
	}
	for _, ts := range clients[0].Types {
		if ts.TypeURL == xds.ClusterType {
			return ts, nil
		}
	}
	return server.TypeStatus{}, fmt.Errorf("no CDS status in %+v", clients[0].Types)
}

// TestADSAckNack drives one sidecar stream through a request, an ACK, a
// config change and a NACK of the change, checking what the control plane
// records and that it does not resend the rejected content.
func TestADSAckNack(t *testing.T) {
	s, dir := start(t, map[string]string{"reviews.yaml": reviewsEntry(9080)})
	c := dialADS(t, s)

	c.send(&discoverypb.DiscoveryRequest{Node: &core.Node{Id: sidecarID}, TypeUrl: xds.ClusterType})
	r1 := c.recv()
	const want9080 = "outbound|9080||reviews.default.svc.cluster.local"
	if names := clusterNames(t, r1); !slices.Contains(names, want9080) {
		t.Fatalf("CDS %v has no %s", names, want9080)
	}
	if r1.VersionInfo == "" || r1.Nonce == "" {
		t.Fatalf("response without version or nonce: %q %q", r1.VersionInfo, r1.Nonce)
	}

	// ACK.
	c.send(&discoverypb.DiscoveryRequest{TypeUrl: xds.ClusterType, VersionInfo: r1.VersionInfo, ResponseNonce: r1.Nonce})
	eventually(t, "ACK recorded", func() error {
		ts, err := cdsStatus(s)
		if err != nil {
			return err
		}
		if !ts.Acked || ts.AckedVersion != r1.VersionInfo || ts.LastNACK != "" {
			return fmt.Errorf("CDS status %+v, want acked %s", ts, r1.VersionInfo)
		}
		return nil
	})

	// A change is pushed without a request.
	writeFile(t, filepath.Join(dir, "reviews.yaml"), reviewsEntry(9080, 9081))
	r2 := c.recv()
	if names := clusterNames(t, r2); !slices.Contains(names, "outbound|9081||reviews.default.svc.cluster.local") {
		t.Fatalf("pushed CDS %v lacks the new port's cluster", names)
	}
	if r2.VersionInfo == r1.VersionInfo || r2.Nonce == r1.Nonce {
		t.Fatalf("push reuses version %q or nonce %q", r2.VersionInfo, r2.Nonce)
	}

	// NACK it: the proxy keeps r1.
	const reason = "cluster outbound|9081||reviews.default.svc.cluster.local: rejected by test"
	c.send(&discoverypb.DiscoveryRequest{
		TypeUrl:       xds.ClusterType,
		VersionInfo:   r1.VersionInfo,
		ResponseNonce: r2.Nonce,
		ErrorDetail:   &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: reason},
	})
	eventually(t, "NACK in Clients()", func() error {
		ts, err := cdsStatus(s)
		if err != nil {
			return err
		}
		if ts.LastNACK != reason || ts.Acked || ts.SentVersion != r2.VersionInfo || ts.AckedVersion != r1.VersionInfo {
			return fmt.Errorf("CDS status %+v, want NACK %q of %s with %s still acked", ts, reason, r2.VersionInfo, r1.VersionInfo)
		}
		return nil
	})
	rejects := regexp.MustCompile(`(?m)^pilot_total_xds_rejects\{type="cds"\} 1$`)
	eventually(t, "NACK in /metrics", func() error {
		_, body := get(t, s, "/metrics")
		if !rejects.MatchString(body) {
			var lines []string
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "pilot_total_xds_rejects") {
					lines = append(lines, l)
				}
			}
			return fmt.Errorf("want %s, have %q", rejects, lines)
		}
		return nil
	})

	// The rejected content is not resent. (The one timed negative check:
	// a resend would follow the NACK at once.)
	select {
	case r := <-c.resps:
		t.Fatalf("response after NACK: %s version %s nonce %s", xds.ShortName(r.TypeUrl), r.VersionInfo, r.Nonce)
	case <-time.After(500 * time.Millisecond):
	}
}
