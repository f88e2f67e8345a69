package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks clustd itself what may follow the words typed so far
// (urfave/cli's --generate-bash-completion), so that it never goes stale.
const bashCompletion = `# bash completion for clustd
_clustd_complete() {
	local cur="${COMP_WORDS[COMP_CWORD]}"
	local IFS=$'\n'
	local words
	if [[ "$cur" == -* ]]; then
		words=$("${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:COMP_CWORD-1}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:COMP_CWORD-1}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _clustd_complete clustd
`

// zshCompletion reuses the bash function through zsh's bashcompinit.
const zshCompletion = `#compdef clustd
autoload -U +X bashcompinit && bashcompinit
` + bashCompletion

func genCommand() *cli.Command {
	return &cli.Command{
		Name:   "gen",
		Usage:  "print the manual page or a shell completion script (for packaging)",
		Hidden: true,
		Subcommands: []*cli.Command{
			{
				Name:  "man",
				Usage: "print the manual page, clustd(8), in roff",
				Action: func(c *cli.Context) error {
					man, err := c.App.ToMan()
					if err != nil {
						return err
					}
					_, err = fmt.Fprint(c.App.Writer, man)
					return err
				},
			},
			{
				Name:      "completion",
				Usage:     "print the completion script for a shell",
				ArgsUsage: "bash|zsh|fish",
				Action: func(c *cli.Context) error {
					var script string
					switch c.Args().First() {
					case "bash":
						script = bashCompletion
					case "zsh":
						script = zshCompletion
					case "fish":
						s, err := c.App.ToFishCompletion()
						if err != nil {
							return err
						}
						script = s
					default:
						return argsUsageError(c, fmt.Sprintf("%q: say bash, zsh or fish", c.Args().First()))
					}
					_, err := fmt.Fprint(c.App.Writer, script)
					return err
				},
			},
		},
		HideHelpCommand: true,
	}
}
