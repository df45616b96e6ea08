package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/golist"
)

// layoutName is how the README's layout section names a package: in bold
// code, **`gateway/carrier`**.
var layoutName = regexp.MustCompile("\\*\\*`([^`]+)`\\*\\*")

// TestREADMELayout keeps the README's layout section true to the tree: it
// names every package of the module, and nothing that is not one.
func TestREADMELayout(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no \"## Layout\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var named []string
	for _, m := range layoutName.FindAllStringSubmatch(section, -1) {
		named = append(named, m[1])
	}

	const module = "github.com/palyra/palyra-go"
	var packages []string
	for _, p := range strings.Fields(golist.Run(t, "-e", "-f", "{{.ImportPath}}", "./...")) {
		switch rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/"); rel {
		case "":
			packages = append(packages, "palyra-desktop")
		default:
			packages = append(packages, rel)
		}
	}
	for _, p := range packages {
		if !slices.Contains(named, p) {
			t.Errorf("the README's layout section does not name package %s", p)
		}
	}
	for _, n := range named {
		// Directories that only hold packages (proto, internal) are named
		// as headings of their group.
		if !slices.Contains(packages, n) && !slices.ContainsFunc(packages, func(p string) bool { return strings.HasPrefix(p, n+"/") }) {
			t.Errorf("the README's layout section names %s, which is no package or directory of packages", n)
		}
	}
}
