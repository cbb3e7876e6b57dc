package main

import "github.com/spf13/cobra"

// extraCommands are the commands beyond the local store's.
func extraCommands() []*cobra.Command {
	cmds := []*cobra.Command{
		newPlanCmd(), newPublishCmd(), newServeCmd(), newQueryCmd(), newVerifyCmd(),
		newCACmd(), newGenesisCmd(), newTokenCmd(), newDemoCmd(), newBriefCmd(),
	}
	return append(cmds, newCoordinatorCmds()...)
}
