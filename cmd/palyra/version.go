package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/palyra/palyra-go/internal/version"
)

func cmdVersion(env *environment) *cobra.Command {
	c := leaf("version", "print palyra's version, and the commit it was built from when known", 0, 0)
	asJSON := c.Flags().Bool("json", false, "print JSON (keys version, revision, modified)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		b := version.Current()
		if *asJSON {
			return writeJSON(env.stdout, b)
		}
		_, err := fmt.Fprintln(env.stdout, "palyra", b)
		return err
	}
	return c
}
