package listener

// Fixtures shared with the external tests (package listener_test).
const (
	SniffedYAML = sniffedYAML
	TLSYAML     = tlsYAML
)
