package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/palyra/palyra-go/internal/version"
)

// cmdGenMan writes a man page per command (make man); hidden, since it
// is for packagers rather than users.
func cmdGenMan() *cobra.Command {
	c := leaf("gen-man DIR", "write the man pages (section 1) into DIR", 1, 1)
	c.Hidden = true
	c.RunE = func(c *cobra.Command, args []string) error {
		if err := os.MkdirAll(args[0], 0o755); err != nil {
			return fmt.Errorf("creating the man page directory: %w", err)
		}
		header := &doc.GenManHeader{Title: "PALYRA", Section: "1", Source: "Palyra " + version.Version, Manual: "Palyra Manual"}
		if err := doc.GenManTree(c.Root(), header, args[0]); err != nil {
			return fmt.Errorf("writing man pages into %s: %w", args[0], err)
		}
		return nil
	}
	return c
}
