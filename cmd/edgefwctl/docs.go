package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func (a *app) completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `completion prints the completion script for bash, zsh or fish. The packages
install it; to load it by hand, source its output.`,
		Example: `  source <(edgefwctl completion bash)
  edgefwctl completion zsh > "${fpath[1]}/_edgefwctl"
  edgefwctl completion fish > ~/.config/fish/completions/edgefwctl.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      args(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				err = root.GenZshCompletion(a.stdout)
			case "fish":
				err = root.GenFishCompletion(a.stdout, true)
			}
			if err != nil {
				return fmt.Errorf("completion %s: %w", args[0], err)
			}
			return nil
		},
	}
}

// genManCmd writes the man pages; packaging calls it at build time.
func (a *app) genManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages of edgefwctl to a directory",
		Hidden: true,
		Long: `gen-man writes one man page (section 8) per command to DIR, creating it.
The date comes from SOURCE_DATE_EPOCH when set, for reproducible packages.`,
		Example: `  edgefwctl gen-man build/man`,
		Args:    oneArg("the output directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("gen-man: %w", err)
			}
			header := &doc.GenManHeader{Section: "8", Source: "edgefw " + version, Manual: "edgefw manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("gen-man %s: %w", dir, err)
			}
			return nil
		},
	}
}
