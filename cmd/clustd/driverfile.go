package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// maxDriverFileSize bounds a driver file: it holds a few flags.
const maxDriverFileSize = 64 << 10

func driverFileCommand() *cli.Command {
	return &cli.Command{
		Name:      "file",
		Usage:     "run the driver a YAML file describes (what clustd-driver@NAME.service runs)",
		ArgsUsage: "FILE",
		Description: "FILE names the driver (kind: exec, shell, webhook, vip or check) and holds\n" +
			"its flags, with the names and values the command line takes; a list repeats a\n" +
			"flag, and an exec driver's command is the list command. The systemd unit\n" +
			"clustd-driver@NAME runs the driver of /etc/clustd/drivers/NAME.yml.\n\n" +
			"Example (/etc/clustd/drivers/vip.yml):\n" +
			"   kind: shell\n" +
			"   config: /etc/clustd/clustd.yml\n" +
			"   required: true\n" +
			"   on-master: ip addr add 10.0.0.100/24 dev eth0\n" +
			"   on-standby: ip addr del 10.0.0.100/24 dev eth0 || true\n\n" +
			"Example (/etc/clustd/drivers/scheduler.yml):\n" +
			"   kind: exec\n" +
			"   config: /etc/clustd/clustd.yml\n" +
			"   stop-timeout: 30s\n" +
			"   command: [/usr/local/bin/scheduler, --fencing-token-from-env, CLUSTD_TERM]",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return argsUsageError(c, "give exactly one driver file")
			}
			path := c.Args().First()
			args, err := driverFileArgs(path)
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			app := newApp()
			app.Writer, app.ErrWriter = c.App.Writer, c.App.ErrWriter
			return app.RunContext(c.Context, append([]string{c.App.Name, "driver"}, args...))
		},
	}
}

// driverFileArgs turns a driver file into the driver's command line:
// KIND --flag=value … [-- COMMAND…].
func driverFileArgs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("driver file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDriverFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("driver file %s: %w", path, err)
	}
	if len(data) > maxDriverFileSize {
		return nil, fmt.Errorf("driver file %s: larger than %d bytes", path, maxDriverFileSize)
	}
	return parseDriverFile(path, data)
}

// parseDriverFile turns a driver file's content into the command line.
func parseDriverFile(path string, data []byte) (args []string, err error) {
	// Operator input: whatever the YAML library does with it, no panic.
	defer func() {
		if r := recover(); r != nil {
			args, err = nil, fmt.Errorf("%s: invalid YAML: %v", path, r)
		}
	}()
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty; it needs at least kind: exec, shell, webhook, vip or check", path)
		}
		return nil, fmt.Errorf("%s: invalid YAML: %v", path, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: expected a mapping of kind and flags", path)
	}
	kinds := []string{"exec", "shell", "webhook", "vip", "check"}
	var kind string
	var flags, command []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		where := fmt.Sprintf("%s:%d: %s", path, k.Line, k.Value)
		if k.Kind != yaml.ScalarNode || k.Value == "" || k.Value[0] == '-' {
			return nil, fmt.Errorf("%s:%d: keys are flag names without dashes, such as config", path, k.Line)
		}
		switch k.Value {
		case "kind":
			if v.Kind != yaml.ScalarNode || !slices.Contains(kinds, v.Value) {
				return nil, fmt.Errorf("%s: expected exec, shell, webhook, vip or check", where)
			}
			kind = v.Value
			continue
		case "command":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				return nil, fmt.Errorf("%s: expected the command and its arguments as a list, such as [/usr/sbin/mysvc, --foreground]", where)
			}
			for _, a := range v.Content {
				if a.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s: every item must be a string", where)
				}
				command = append(command, a.Value)
			}
			continue
		}
		values := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			values = v.Content
		}
		for _, x := range values {
			if x.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: expected a value or a list of values", where)
			}
			val := x.Value
			if x.ShortTag() == "!!null" {
				val = ""
			}
			flags = append(flags, "--"+k.Value+"="+val)
		}
	}
	if kind == "" {
		return nil, fmt.Errorf("%s: kind is missing: exec, shell, webhook, vip or check", path)
	}
	if command != nil && kind != "exec" {
		return nil, fmt.Errorf("%s: command is for kind: exec; a %s driver takes flags only", path, kind)
	}
	if kind == "exec" && command == nil {
		return nil, fmt.Errorf("%s: an exec driver needs command: [PROGRAM, ARGS…]", path)
	}
	args = append([]string{kind}, flags...)
	if command != nil {
		args = append(append(args, "--"), command...)
	}
	return args, nil
}
