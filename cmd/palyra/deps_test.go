package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// nodeFileMarks are what a node file's name or format looks like in Go
// source: the secret store's certificate items, the file names, and the
// JSON keys of node.StoredConfig and node.Sharing.
var nodeFileMarks = []string{
	"device-cert", "gateway-ca",
	"node.json", "sharing.json", "pending.json", "pairing-grant-key",
	`json:"revoked_at"`, `json:"request_id"`,
	`json:"device_name"`, `json:"gateway_name"`, `json:"gateways"`, `json:"shared_folder"`, `json:"shell_allow"`,
}

// TestNodeFilesHaveOneOwner keeps the node's files node's: the command
// reads them through node.ReadConfig, node.ReadSharing and the Stored
// certificates, and probes the gateway with node.PinnedTLSConfig, so no
// non-test source here names a node file, declares its format or builds a
// TLS configuration of its own.
func TestNodeFilesHaveOneOwner(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	parsed := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		parsed++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(n.Value)
				if err != nil {
					t.Fatalf("%s: %v", fset.Position(n.Pos()), err)
				}
				for _, mark := range nodeFileMarks {
					if strings.Contains(s, mark) {
						t.Errorf("%s: %q is node's; use what package node exports", fset.Position(n.Pos()), mark)
					}
				}
			case *ast.CompositeLit:
				if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Config" {
					if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "tls" {
						t.Errorf("%s: a tls.Config of its own; the gateway's pinned trust is node.PinnedTLSConfig's", fset.Position(n.Pos()))
					}
				}
			}
			return true
		})
	}
	if parsed == 0 {
		t.Fatal("no Go sources found")
	}
}
