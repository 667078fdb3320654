// Package kubefake builds a kube.Client whose clients are client-go's
// in-memory fakes, for unit tests of code that uses internal/kube. Objects
// created through a fake client are seen by informers built on it, so the
// same event-driven paths run as against a real API server (without
// admission, defaulting or validation: use kubetest for those).
package kubefake

import (
	"fmt"
	"sync"

	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	extfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/trellismesh/trellis/internal/kube"
)

// Client is a kube.Client over fakes, with the fakes' concrete types kept
// for tests that need their reactors or action logs.
type Client struct {
	*kube.Client
	KubeFake       *kubefake.Clientset
	IstioFake      *istiofake.Clientset
	GatewayAPIFake *gatewayfake.Clientset
	ExtensionsFake *extfake.Clientset
	DynamicFake    *dynamicfake.FakeDynamicClient

	watches *watches
}

// WatchStarted is closed once an informer (or anyone) has a watch on the
// resource (e.g. "services", "virtualservices") of the Kubernetes or
// Istio fake. client-go's fakes send a watch only the changes made after
// it started and do not replay from a resource version as an API server
// does: a test that changes objects right after an informer synced waits
// for this first, or the change can be lost.
func (c *Client) WatchStarted(resource string) <-chan struct{} {
	return c.watches.started(resource)
}

// watches records the resources watched so far.
type watches struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (w *watches) started(resource string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.ch[resource]
	if !ok {
		c = make(chan struct{})
		w.ch[resource] = c
	}
	return c
}

// signalWatches makes f's watches (its tracker's, as the default reactor
// does) close the resource's WatchStarted channel once registered.
func signalWatches(f interface {
	PrependWatchReactor(resource string, reaction clienttesting.WatchReactionFunc)
	Tracker() clienttesting.ObjectTracker
}, w *watches) {
	f.PrependWatchReactor("*", func(action clienttesting.Action) (bool, watch.Interface, error) {
		var opts []metav1.ListOptions
		if wa, ok := action.(clienttesting.WatchActionImpl); ok {
			opts = append(opts, wa.ListOptions)
		}
		wi, err := f.Tracker().Watch(action.GetResource(), action.GetNamespace(), opts...)
		if err != nil {
			return false, nil, err
		}
		c := w.started(action.GetResource().Resource)
		select {
		case <-c:
		default:
			close(c)
		}
		return true, wi, nil
	})
}

// New returns a fake bundle holding objects. Each object goes to the
// clientset whose scheme knows its type (Kubernetes built-ins, Istio,
// Gateway API, apiextensions); every object is also visible through the
// dynamic client. An object no scheme knows is an error.
func New(objects ...runtime.Object) (*Client, error) {
	schemes := []struct {
		name string
		add  func(*runtime.Scheme) error
		objs []runtime.Object
	}{
		{name: "kubernetes", add: kubefake.AddToScheme},
		{name: "istio", add: istiofake.AddToScheme},
		{name: "gateway-api", add: gatewayfake.AddToScheme},
		{name: "apiextensions", add: extfake.AddToScheme},
	}
	all := runtime.NewScheme()
	for n := range schemes {
		if err := schemes[n].add(all); err != nil {
			return nil, fmt.Errorf("kubefake: %s scheme: %w", schemes[n].name, err)
		}
	}
	for _, obj := range objects {
		placed := false
		for n := range schemes {
			s := runtime.NewScheme()
			if err := schemes[n].add(s); err != nil {
				return nil, fmt.Errorf("kubefake: %s scheme: %w", schemes[n].name, err)
			}
			if _, _, err := s.ObjectKinds(obj); err == nil {
				schemes[n].objs = append(schemes[n].objs, obj)
				placed = true
				break
			}
		}
		if !placed {
			return nil, fmt.Errorf("kubefake: no scheme knows %T", obj)
		}
	}
	w := &watches{ch: map[string]chan struct{}{}}
	kc := kubefake.NewClientset(schemes[0].objs...)
	signalWatches(kc, w)
	ic := istiofake.NewSimpleClientset(schemes[1].objs...)
	signalWatches(ic, w)
	refuseWatchList(ic) // prepended after: runs first
	gc := gatewayfake.NewClientset(schemes[2].objs...)
	ec := extfake.NewClientset(schemes[3].objs...)
	dc := dynamicfake.NewSimpleDynamicClient(all, objects...)
	return &Client{
		Client:         &kube.Client{Kube: kc, Istio: ic, GatewayAPI: gc, Dynamic: dc, Extensions: ec},
		KubeFake:       kc,
		IstioFake:      ic,
		GatewayAPIFake: gc,
		ExtensionsFake: ec,
		DynamicFake:    dc,
		watches:        w,
	}, nil
}

// refuseWatchList makes the fake refuse watches that ask for the initial
// events as a stream (sendInitialEvents), as an API server without the
// WatchList feature does. Istio's generated informers do not tell
// client-go that a fake cannot stream them, so their reflectors would wait
// for a bookmark that never comes; refused, they fall back to list and
// watch. The Kubernetes and Gateway API fakes declare it themselves.
func refuseWatchList(f interface {
	PrependWatchReactor(resource string, reaction clienttesting.WatchReactionFunc)
}) {
	f.PrependWatchReactor("*", func(action clienttesting.Action) (bool, watch.Interface, error) {
		w, ok := action.(clienttesting.WatchActionImpl)
		if ok && w.ListOptions.SendInitialEvents != nil && *w.ListOptions.SendInitialEvents {
			return true, nil, apierrors.NewBadRequest("the fake clientset does not stream initial events (sendInitialEvents)")
		}
		return false, nil, nil
	})
}
