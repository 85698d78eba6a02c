// Command portcullis is the gateway's one binary: `portcullis serve` runs
// the server, `portcullis agent` runs on a target that dials out, and
// every other subcommand is a client of the gateway's admin API.
package main

import (
	"context"
	"os"

	"github.com/portcullis/portcullis/internal/agent"
	"github.com/portcullis/portcullis/internal/cli"
	"github.com/portcullis/portcullis/internal/server"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(server.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(agent.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
