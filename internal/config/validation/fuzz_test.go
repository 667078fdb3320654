package validation_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/decode"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/validation"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

// fuzzSeeds are small objects of every kind that exercise many rules.
var fuzzSeeds = []struct{ kind, spec string }{
	{"VirtualService", "{hosts: ['*.a.com', b], gateways: [ns/gw, mesh], http: [{match: [{uri: {regex: '^/a'}, headers: {x: {prefix: b}}}], route: [{destination: {host: a, subset: v1, port: {number: 80}}, weight: 50}, {destination: {host: b}, weight: 50}], retries: {attempts: 2, retryOn: '5xx,reset'}, fault: {delay: {fixedDelay: 1s}}, corsPolicy: {allowOrigins: [{exact: x}]}, headers: {request: {set: {x: '%HOSTNAME%'}}}}], tls: [{match: [{sniHosts: [x.a.com]}], route: [{destination: {host: x.a.com}}]}], tcp: [{route: [{destination: {host: c}}]}]}"},
	{"DestinationRule", "{host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: c}, maglev: {tableSize: 7}}, localityLbSetting: {distribute: [{from: a/b, to: {c: 100}}]}}, connectionPool: {tcp: {maxConnections: 1}}, outlierDetection: {interval: 1s}, tls: {mode: MUTUAL, credentialName: c}, portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE}}]}, subsets: [{name: v1, labels: {v: '1'}}], exportTo: ['.']}"},
	{"Gateway", "{selector: {istio: ingressgateway}, servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [ns/a.com], tls: {mode: SIMPLE, credentialName: c, cipherSuites: [AES128-SHA]}}]}"},
	{"ServiceEntry", "{hosts: [a.com, b.com], addresses: [10.0.0.0/8], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: 10.0.0.1, ports: {http: 8080}}, {address: 'unix:///a'}], exportTo: ['~']}"},
	{"WorkloadEntry", "{address: 10.0.0.1, ports: {http: 80}, labels: {app: a}, network: net1}"},
	{"WorkloadGroup", "{metadata: {labels: {app: a}}, template: {ports: {http: 80}}, probe: {httpGet: {port: 80, httpHeaders: [{name: a}]}}}"},
	{"Sidecar", "{workloadSelector: {labels: {app: a}}, ingress: [{port: {number: 80, protocol: HTTP}, defaultEndpoint: '127.0.0.1:8080'}], egress: [{port: {number: 0, protocol: HTTP}, bind: 'unix:///a', hosts: ['./*']}, {hosts: ['*/*']}], outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: p.com, port: {number: 1}}}}"},
	{"PeerAuthentication", "{selector: {matchLabels: {app: a}}, portLevelMtls: {80: {mode: STRICT}}}"},
	{"AuthorizationPolicy", "{action: DENY, rules: [{from: [{source: {ipBlocks: [1.2.3.4/32], serviceAccounts: [a/b]}}], to: [{operation: {paths: ['/a/{*}/{**}'], ports: ['80']}}], when: [{key: 'request.headers[x]', values: [a]}]}]}"},
	{"RequestAuthentication", "{jwtRules: [{issuer: a, jwksUri: 'https://a.com/k', fromHeaders: [{name: x}], outputClaimToHeaders: [{header: x, claim: sub}]}]}"},
}

// FuzzValidate decodes arbitrary bytes and validates whatever decodes: it
// must never panic, and every finding must name a field and a reason.
func FuzzValidate(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(samples.Path(f, "bookinfo/networking"), "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no samples: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(objectYAML(s.kind, "labels: {a: b}", s.spec)))
	}
	schemas := schema.Istio()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range decode.Decode(schemas, "fuzz.yaml", data).Configs {
			warnings, err := validation.Validate(c)
			var errs validation.Errors
			if err != nil && (!errors.As(err, &errs) || len(errs) == 0) {
				t.Fatalf("error %v of type %T", err, err)
			}
			for _, fe := range append(errs, warnings...) {
				if fe.Reason == "" || !strings.HasPrefix(fe.Field, "spec") && !strings.HasPrefix(fe.Field, "metadata") {
					t.Fatalf("malformed finding %+v", fe)
				}
			}
		}
	})
}

// FuzzValidateProto validates specs built from arbitrary protobuf wire
// bytes, which reach states YAML rarely does (empty oneofs, zero-valued
// nested messages, out-of-range enums).
func FuzzValidateProto(f *testing.F) {
	all := schema.Istio().All()
	for _, s := range fuzzSeeds {
		c := mustDecode(f, objectYAML(s.kind, "", s.spec))
		data, err := proto.Marshal(c.Spec)
		if err != nil {
			f.Fatal(err)
		}
		for i, sc := range all {
			if sc.GroupKind == c.Kind {
				f.Add(uint8(i), data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		sc := all[int(kind)%len(all)]
		spec := sc.New()
		if proto.Unmarshal(data, spec) != nil {
			return
		}
		c := config.Config{Meta: config.Meta{Kind: sc.GroupKind, Name: "fuzz", Namespace: "ns"}, Spec: spec}
		warnings, err := validation.Validate(c)
		var errs validation.Errors
		if err != nil && (!errors.As(err, &errs) || len(errs) == 0) {
			t.Fatalf("error %v of type %T", err, err)
		}
		for _, fe := range append(errs, warnings...) {
			if fe.Reason == "" || !strings.HasPrefix(fe.Field, "spec") && !strings.HasPrefix(fe.Field, "metadata") {
				t.Fatalf("malformed finding %+v", fe)
			}
		}
	})
}

func TestFuzzSeedsAreValid(t *testing.T) {
	for _, s := range fuzzSeeds {
		c := mustDecode(t, objectYAML(s.kind, "", s.spec))
		if _, err := validation.Validate(c); err != nil {
			t.Errorf("%s seed: %v", s.kind, err)
		}
	}
}
