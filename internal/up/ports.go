package up

import "github.com/trellismesh/trellis/internal/freeport"

// portAllocator returns a port free on AppHost (freePort; tests may pass
// their own).
type portAllocator func() (uint16, error)

// freePort picks a free port on AppHost outside the kernel's ephemeral
// range, so that nothing binding port 0 takes it before the workload
// binds it.
func freePort() (uint16, error) { return freeport.Pick(AppHost) }
