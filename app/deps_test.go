package app

import (
	"slices"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// appAllowed are the only packages of this module that the UI's packages
// may import: the agent's API, its capability and desktop types, the
// pairing formats (PIN, link, QR image) it validates as they are typed and
// the sentinel errors it explains, and the icons. app/localgw is the one way to the
// gateway. app/autostart writes its desktop entry with internal/atomicfile.
// The About window shows internal/version's build, as `palyra version` does.
var appAllowed = []string{
	"github.com/palyra/palyra-go/app/autostart",
	"github.com/palyra/palyra-go/internal/atomicfile",
	"github.com/palyra/palyra-go/internal/version",
	"github.com/palyra/palyra-go/app/localgw",
	"github.com/palyra/palyra-go/assets",
	"github.com/palyra/palyra-go/identity/pairing",
	"github.com/palyra/palyra-go/identity/pairing/qr",
	"github.com/palyra/palyra-go/node",
	"github.com/palyra/palyra-go/node/capability",
	"github.com/palyra/palyra-go/node/desktop",
	"github.com/palyra/palyra-go/node/pairclient",
}

// appForbidden are packages (and the packages below them) that do
// networking, protocols or cryptography, which the UI leaves to node.Agent
// and app/localgw.
var appForbidden = []string{
	"crypto", "golang.org/x/crypto", "net", "github.com/quic-go/quic-go", "google.golang.org/grpc",
	"google.golang.org/protobuf", "github.com/palyra/palyra-go/proto", "github.com/palyra/palyra-go/gateway",
	"github.com/palyra/palyra-go/identity/cpace",
}

// TestImports keeps app/ a thin client (DESIGN.md, "Desktop app"): its
// packages (app/localgw aside, which has its own fence) import no protocol,
// crypto or network code of their own, and no part of this module outside
// appAllowed — no gateway/, no identity/cpace, no key handling.
func TestImports(t *testing.T) {
	t.Parallel()
	out := golist.Run(t, "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	const module = "github.com/palyra/palyra-go/"
	checked := 0
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == module+"app/localgw" {
			continue
		}
		checked++
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module) && !slices.Contains(appAllowed, imp) {
				t.Errorf("%s imports %s", f[0], imp)
			}
			// Named apart from appAllowed, so that a carrier is never
			// allowed by adding it there.
			if golist.IsCarrier(imp) {
				t.Errorf("%s imports the carrier %s; the UI reaches the gateway through node.Agent", f[0], imp)
			}
			for _, bad := range appForbidden {
				if imp == bad || strings.HasPrefix(imp, bad+"/") {
					t.Errorf("%s imports %s", f[0], imp)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatalf("go list found no packages under app/:\n%s", out)
	}
}
