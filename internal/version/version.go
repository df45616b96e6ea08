// Package version is Palyra's version, the one place it is written: the
// command line prints it, a node reports it to its gateway (and in
// system.info), and the gateway's metrics label their build with it.
// FyneApp.toml, which packages the desktop app, carries a copy that a test
// keeps equal.
package version

import (
	"regexp"
	"runtime/debug"
	"strings"
)

// pseudoVersion matches a Go pseudo-version's timestamp and commit.
var pseudoVersion = regexp.MustCompile(`[-.]\d{14}-([0-9a-f]{12})$`)

// Version is Palyra's version. A release build may set it with
// -ldflags "-X github.com/palyra/palyra-go/internal/version.Version=…".
var Version = "0.1.0"

// Build is what a binary knows of how it was built.
type Build struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	// Modified: built from a checkout with uncommitted changes.
	Modified bool `json:"modified,omitempty"`
}

// Current is this binary's Build: Version, or the release `go install
// …@VERSION` stamped, and the commit it was built from when the build
// stamped one (vcs.revision in a checkout, a pseudo-version's commit).
func Current() Build {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Build {
	b := Build{Version: Version}
	if bi == nil {
		return b
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		v, dirty := strings.CutSuffix(v, "+dirty")
		b.Modified = dirty
		// A pseudo-version (an untagged commit: go install @COMMIT, or
		// go build in a checkout) names a commit, not a release: keep
		// Version and take the commit from it.
		if m := pseudoVersion.FindStringSubmatch(v); m != nil {
			b.Revision = m[1]
		} else {
			b.Version = strings.TrimPrefix(v, "v")
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the version as `palyra version` prints it.
func (b Build) String() string {
	s := b.Version
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " (commit " + rev
		if b.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s
}
