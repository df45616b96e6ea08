package admin_test

import (
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// The admin API is Go: the admin protocol and its adapter
// (gateway/adminrpc) are not among its dependencies, and it makes no gRPC
// statuses itself. (gRPC comes in under the node protocol's package.)
func TestImports(t *testing.T) {
	t.Parallel()
	for _, dep := range golist.Deps(t) {
		if strings.HasPrefix(dep, "github.com/palyra/palyra-go/proto/admin") ||
			strings.HasPrefix(dep, "github.com/palyra/palyra-go/gateway/adminrpc") {
			t.Errorf("gateway/admin depends on %s", dep)
		}
	}
	for _, imp := range strings.Fields(golist.Run(t, "-f", `{{range .Imports}}{{.}} {{end}}`, ".")) {
		if strings.HasPrefix(imp, "google.golang.org/grpc") {
			t.Errorf("gateway/admin imports %s", imp)
		}
	}
}
