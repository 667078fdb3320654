# The two commands of the README.
.PHONY: demo test build

# Run the Bookinfo mesh on this machine: control plane, sidecars and the
# sample's services; http://127.0.0.1:9080/productpage (Ctrl-C stops it).
# Built rather than `go run` so that Ctrl-C reaches trellis alone and it
# exits 0 after stopping everything.
demo: build
	bin/trellis up

# Run the whole test suite, as CI does.
test:
	./scripts/test.sh

build:
	GOTOOLCHAIN=local go build -tags grpcnotrace -o bin/trellis ./cmd/trellis
