package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/clustd/clustd/node/api"
	"github.com/clustd/clustd/node/config"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "print the admin token, for the status page's transfer and maintenance buttons",
		Description: "Prints the admin token that POST /v1/transfer and POST /v1/maintenance need, derived\n" +
			"from the cluster secret. Paste it into the status page (it stays in that browser tab's\n" +
			"session storage) to get its transfer and maintenance buttons. Whoever has it can move\n" +
			"the master role: treat it like the secret.\n\n" +
			"Example:\n" +
			"   clustd token --config /etc/clustd/clustd.yml",
		Flags: []cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "secret-file", Usage: "the cluster's secret file, instead of the one --config names"},
		},
		Action: runToken,
	}
}

func runToken(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(c, fmt.Sprintf("unexpected argument %q", c.Args().First()))
	}
	cfgPath, secretFile := strings.TrimSpace(c.String("config")), strings.TrimSpace(c.String("secret-file"))
	var secret []byte
	switch {
	case secretFile != "":
		b, err := readSecretFile(secretFile)
		if err != nil {
			return &exitError{code: 1, msg: fmt.Sprintf("--secret-file %s: %v", secretFile, err)}
		}
		secret = b
	case cfgPath != "":
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		secret = cfg.Secret
	default:
		return usageError(c, "give --config FILE (the node's configuration) or --secret-file FILE (the cluster secret)")
	}
	_, err := fmt.Fprintln(c.App.Writer, api.AdminToken(secret))
	return err
}
