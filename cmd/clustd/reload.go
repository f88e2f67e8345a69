package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/clustd/clustd/node"
	"github.com/clustd/clustd/node/config"
	"github.com/clustd/clustd/node/sdnotify"
)

// reload applies the configuration file again (SIGHUP, systemctl reload):
// what may change live is applied, and a file that is invalid or changes
// anything else is refused whole, the daemon keeping its configuration.
// The service manager hears RELOADING=1 first and READY=1 once done,
// whatever the outcome: the daemon runs either way.
func reload(ctx context.Context, d *node.Daemon, path string, level *slog.LevelVar, log *slog.Logger) {
	d.Notify.Send(sdnotify.ReloadingNow(node.Monotonic())...)
	defer d.Notify.Send(sdnotify.Ready)
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("reload refused: configuration not reloaded, still running on the previous one", "err", err)
		d.Reloaded(fmt.Sprintf("SIGHUP: reload of %s refused, still on the previous configuration: %v", path, err))
		return
	}
	var newLevel slog.LevelVar
	if err := newLevel.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		log.Error("reload refused: bad log_level", "err", err)
		d.Reloaded(fmt.Sprintf("SIGHUP: reload of %s refused: bad log_level: %v", path, err))
		return
	}
	changed, err := d.Reload(ctx, cfg)
	if err != nil {
		log.Error("reload refused", "err", err)
		d.Reloaded(fmt.Sprintf("SIGHUP: reload of %s refused: %v", path, err))
		return
	}
	level.Set(newLevel.Level())
	if len(changed) == 0 {
		log.Info("configuration reloaded: nothing changed", "file", path)
		d.Reloaded("SIGHUP: " + path + " reloaded, nothing changed")
		return
	}
	log.Info("configuration reloaded", "file", path, "changed", changed)
	d.Reloaded(fmt.Sprintf("SIGHUP: %s reloaded, changed %v", path, changed))
}
