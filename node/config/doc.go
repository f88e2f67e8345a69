// Package config reads, validates and writes clustd's per-node configuration
// file.
//
// The file is YAML. Every problem is reported as an [*Error] that names the
// file, the line and the field, so that an operator can fix a cluster's
// configuration from the error message alone: a daemon that starts with a
// half-understood configuration could take part in elections with the wrong
// member list or timing, which is worse than not starting at all. Unknown
// fields are rejected for the same reason, since a misspelt key would
// otherwise silently fall back to a default.
//
// [Load] and [Parse] return a [Config] whose values are resolved: defaults
// filled in, relative paths made absolute, secrets read, the timing profile
// merged with explicit overrides and validated. [Init] writes a fresh
// cluster's files, one per node plus a shared secret; [ImportSeed] writes
// them from the 2018 daemon's config.yml files.
package config
