package version

import (
	"runtime/debug"
	"testing"
)

// The version comes from what the build stamped: a module version from go
// install, a revision from a checkout; without either, Version.
func TestFromBuildInfo(t *testing.T) {
	for _, tt := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, Version},
		{"a checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"},
		}}, Version + " (commit 0123456789ab, modified)"},
		{"go install at a tag", &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, "0.2.0"},
		{"go install at a commit", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202010203-0123456789ab"}},
			Version + " (commit 0123456789ab)"},
		{"a checkout, with the pseudo-version go build stamps", &debug.BuildInfo{
			Main:     debug.Module{Version: "v0.0.0-20261202022457-9132d26b28f1+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "9132d26b28f15e9a7db61b3e6b0cf568e570e36e"}, {Key: "vcs.modified", Value: "true"}},
		}, Version + " (commit 9132d26b28f1, modified)"},
	} {
		if got := fromBuildInfo(tt.bi).String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
