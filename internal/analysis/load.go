package analysis

import (
	"context"
	"errors"
	"fmt"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"log/slog"
	"os"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/config/store/file"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry/serviceentry"
)

// LoadConfig says what Load reads.
type LoadConfig struct {
	// Dirs are directory trees of YAML; earlier ones win when an object is
	// defined twice. At least one is required.
	Dirs []string
	// Schemas are the kinds read (zero value: schema.Istio()).
	Schemas schema.Set
	// Validate checks each object (nil: ingest.Validate).
	Validate store.ValidateFunc
	// Mesh and DomainSuffix go into the snapshot (nil and "": defaults).
	Mesh         *meshconfig.MeshConfig
	DomainSuffix string
	// Logger receives the stores' logs; nil discards.
	Logger *slog.Logger
}

// Load reads the directories once, with the same file store and
// ServiceEntry registry the control plane uses, and returns the input of
// Analyze. It fails only when a directory cannot be used at all; problems
// with files and objects are in Input.Problems.
func Load(ctx context.Context, cfg LoadConfig) (Input, error) {
	if len(cfg.Dirs) == 0 {
		return Input{}, errors.New("no directory to analyze")
	}
	if cfg.Validate == nil {
		cfg.Validate = ingest.Validate
	}
	if len(cfg.Schemas.All()) == 0 {
		cfg.Schemas = schema.Istio()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stores := make([]store.Store, 0, len(cfg.Dirs))
	for _, dir := range cfg.Dirs {
		st, err := os.Stat(dir)
		if err != nil {
			return Input{}, fmt.Errorf("reading %s: %w", dir, err)
		}
		if !st.IsDir() {
			return Input{}, fmt.Errorf("%s is not a directory", dir)
		}
		fs, err := file.New(file.Config{
			Dir:      dir,
			Schemas:  cfg.Schemas,
			Decode:   ingest.Decoder(cfg.Schemas),
			Validate: cfg.Validate,
			Logger:   log,
		})
		if err != nil {
			return Input{}, fmt.Errorf("reading %s: %w", dir, err)
		}
		stores = append(stores, fs)
	}
	agg, err := store.NewAggregate(stores...)
	if err != nil {
		return Input{}, err
	}
	reg, err := serviceentry.New(serviceentry.Config{Store: agg, Logger: log})
	if err != nil {
		return Input{}, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { agg.Run(runCtx); done <- struct{}{} }()
	go func() { reg.Run(runCtx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	if err := waitSynced(ctx, reg.HasSynced); err != nil {
		return Input{}, err
	}

	var configs []config.Config
	for _, sc := range agg.Schemas().All() {
		configs = append(configs, agg.List(sc.GroupKind, "")...)
	}
	services := reg.Services()
	endpoints := make(map[model.ServiceKey][]*model.Endpoint, len(services))
	for _, svc := range services {
		endpoints[svc.Key()] = reg.Endpoints(svc.Key())
	}
	return Input{
		Snapshot: model.NewSnapshot(model.SnapshotInput{
			Version:      "analyze",
			Mesh:         cfg.Mesh,
			DomainSuffix: cfg.DomainSuffix,
			Configs:      configs,
			Services:     services,
			Endpoints:    endpoints,
		}),
		Problems: agg.Problems(),
	}, nil
}

// waitSynced polls synced until it is true or ctx ends; HasSynced has no
// notification.
func waitSynced(ctx context.Context, synced func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !synced() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("loading configuration: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
