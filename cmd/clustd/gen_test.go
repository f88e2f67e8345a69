package main

import (
	"strings"
	"testing"
)

func TestGen(t *testing.T) {
	out, code, msg := runApp(t, "gen", "man")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), ".nh\n.TH clustd 8") || !strings.Contains(out, "maintenance") || !strings.Contains(out, "check") {
		t.Errorf("gen man: exit %d %q\n%.300s", code, msg, out)
	}
	for shell, want := range map[string]string{"bash": "complete -o bashdefault -o default -F _clustd_complete clustd", "zsh": "#compdef clustd", "fish": "complete -c clustd"} {
		out, code, msg := runApp(t, "gen", "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("gen completion %s: exit %d %q\n%.300s", shell, code, msg, out)
		}
	}
	if _, code, msg := runApp(t, "gen", "completion", "tcsh"); code != 2 || !strings.Contains(msg, "say bash, zsh or fish") {
		t.Errorf("gen completion tcsh: exit %d %q", code, msg)
	}
}
