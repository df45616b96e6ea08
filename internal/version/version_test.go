package version

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestFyneAppVersion keeps the desktop app's package metadata at the same
// version: the fyne tool reads FyneApp.toml, which cannot refer to
// Version, so it holds a copy.
func TestFyneAppVersion(t *testing.T) {
	b, err := os.ReadFile("../../FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	section, found := "", false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if section != "[Details]" || !ok || strings.TrimSpace(key) != "Version" {
			continue
		}
		got, err := strconv.Unquote(strings.TrimSpace(value))
		if err != nil {
			t.Fatalf("FyneApp.toml: Version is not a quoted string: %s", line)
		}
		if got != Version {
			t.Errorf("FyneApp.toml has Version %q, internal/version %q: change both", got, Version)
		}
		found = true
	}
	if !found {
		t.Fatal("FyneApp.toml has no Version in [Details]")
	}
}
