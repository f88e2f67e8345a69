package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/clustd/clustd/driverproto"
	"github.com/clustd/clustd/node/api"
)

// maintenanceName is the file in the data directory that holds maintenance
// mode while it is on; its absence means off.
const maintenanceName = "maintenance.json"

// maintenanceFile is the file's content. Times are wall-clock: the window
// must survive a reboot, which the monotonic clock does not.
type maintenanceFile struct {
	Version int       `json:"version"`
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
}

// maintenance is the window in force. The daemon's mu guards on, reason,
// until, gen and timer; change serialises whole changes, file included.
type maintenance struct {
	change sync.Mutex
	on     bool
	reason string
	until  time.Time
	gen    uint64 // which window the timer ends
	timer  *time.Timer
}

// SetMaintenance turns maintenance on, for DefaultMaintenance, or off.
func (d *Daemon) SetMaintenance(ctx context.Context, on bool) error {
	return d.SetMaintenanceFor(ctx, on, 0, "")
}

// SetMaintenanceFor turns maintenance on for dur (api.DefaultMaintenance
// when 0), with a reason, or off. The window is written to the data
// directory before it takes effect, so that it survives a restart, and it
// ends by itself: a node forgotten in maintenance would leave the cluster
// one failure closer to having no master.
func (d *Daemon) SetMaintenanceFor(ctx context.Context, on bool, dur time.Duration, reason string) error {
	if dur <= 0 {
		dur = api.DefaultMaintenance
	}
	dur = min(dur, api.MaxMaintenance)
	d.maint.change.Lock()
	defer d.maint.change.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	path := filepath.Join(d.cfg.DataDir, maintenanceName)
	var until time.Time
	if on {
		now := time.Now()
		until = now.Add(dur)
		if err := writeMaintenance(path, maintenanceFile{Version: 1, Reason: reason, Since: now.UTC(), Until: until.UTC()}); err != nil {
			return fmt.Errorf("maintenance not turned on: %w", err)
		}
	} else if err := removeMaintenance(path); err != nil {
		return fmt.Errorf("maintenance not turned off: %w", err)
	}
	err := d.do(ctx, func(now time.Duration) { d.applyMaintenance(now, on, reason, until, "") })
	if err == nil {
		detail := "off"
		if on {
			detail = "on"
		}
		d.event(driverproto.EventMaintenance, detail)
	}
	return err
}

// applyMaintenance sets the window in the core and arms its end. Called
// with d.mu held.
func (d *Daemon) applyMaintenance(now time.Duration, on bool, reason string, until time.Time, why string) {
	m := &d.maint
	m.gen++
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.on, m.reason, m.until = on, reason, until
	// Maintenance is the node's: every role hands over and stays away.
	for _, r := range d.roles {
		r.core.SetMaintenance(now, on)
	}
	if on {
		gen := m.gen
		m.timer = time.AfterFunc(time.Until(until), func() { d.endMaintenance(gen) })
		d.log.Info("maintenance on", "reason", reason, "until", until.UTC().Format(time.RFC3339), "why", why)
	} else {
		d.log.Info("maintenance off", "why", why)
	}
	d.rec.maintenance(on, reason, until, why)
	d.notifyStatus()
}

// endMaintenance ends window gen when its time is up, unless it has since
// been replaced or ended.
func (d *Daemon) endMaintenance(gen uint64) {
	d.maint.change.Lock()
	defer d.maint.change.Unlock()
	d.mu.Lock()
	current := d.maint.gen == gen && d.maint.on
	reason := d.maint.reason
	d.mu.Unlock()
	if !current {
		return
	}
	path := filepath.Join(d.cfg.DataDir, maintenanceName)
	if err := removeMaintenance(path); err != nil {
		// Ending it matters more than the file: a restart finds the
		// window over anyway, since it holds the end time.
		d.log.Error("maintenance ended, but its file remains", "file", path, "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.do(ctx, func(now time.Duration) {
		if d.maint.gen == gen {
			d.applyMaintenance(now, false, "", time.Time{}, "the window ended by itself (it was: "+reason+")")
		}
	})
}

// restoreMaintenance takes up a window saved before a restart: one still
// open is applied, one that ended meanwhile is removed. Called from New,
// before any input.
func (d *Daemon) restoreMaintenance(now time.Duration) error {
	path := filepath.Join(d.cfg.DataDir, maintenanceName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maintenance file %s: %w", path, err)
	}
	var f maintenanceFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 || f.Until.IsZero() {
		return fmt.Errorf("maintenance file %s is not one clustd wrote (%v); remove it and set maintenance again with clustd maintenance on", path, err)
	}
	if !time.Now().Before(f.Until) {
		if err := removeMaintenance(path); err != nil {
			return err
		}
		d.log.Info("maintenance ended while the daemon was stopped", "reason", f.Reason, "until", f.Until.Format(time.RFC3339))
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applyMaintenance(now, true, f.Reason, f.Until, "restored from "+path)
	return nil
}

// stopMaintenanceTimer is for Run's end.
func (d *Daemon) stopMaintenanceTimer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.maint.timer != nil {
		d.maint.timer.Stop()
	}
}

// maintenanceStatus fills the status's maintenance fields. Called with
// d.mu held.
func (d *Daemon) maintenanceStatus(s *api.Status) {
	if d.maint.on {
		s.MaintenanceReason = d.maint.reason
		s.MaintenanceUntil = d.maint.until.UTC().Format(time.RFC3339)
	}
}

// writeMaintenance writes the file atomically: a crash leaves the old
// file or the new one, never a torn one.
func writeMaintenance(path string, f maintenanceFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.Write(append(b, '\n')); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncParent(path)
}

func removeMaintenance(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncParent(path)
}

func syncParent(path string) error {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
