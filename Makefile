# The two commands of the README.
.PHONY: demo test build

# Run the control plane on the local Bookinfo configuration (Ctrl-C stops it).
demo:
	GOTOOLCHAIN=local go run ./cmd/trellis discovery --config-dir examples/bookinfo/config

# Run the whole test suite, as CI does.
test:
	./scripts/test.sh

build:
	GOTOOLCHAIN=local go build -o bin/trellis ./cmd/trellis
