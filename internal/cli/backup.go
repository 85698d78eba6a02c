package cli

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis/portcullis/internal/backup"
	"github.com/portcullis/portcullis/internal/config"
)

const backupUsage = `Usage: portcullis backup --out FILE [--config FILE | --store STORE]
       portcullis restore --in FILE [--config FILE | --store STORE]

backup writes a copy of the gateway's database to FILE (which must not
exist), while the gateway runs:
  SQLite       a consistent copy made with VACUUM INTO (mode 0600)
  PostgreSQL   pg_dump --format=custom (needs the PostgreSQL client tools)

restore replaces the database's content with FILE. Stop the gateway first
(every gateway sharing a PostgreSQL database). For SQLite the database it
replaces is kept beside it as PATH.before-restore-TIME, and a copy whose
schema is newer than this binary is refused; for PostgreSQL, pg_restore runs
in one transaction, so a failed restore changes nothing.

Neither copy holds the master key (DATA/master.key): without it, the target
keys and the user CA sealed in the database cannot be opened. Back it up
apart, and keep it as safe as the gateway itself.

Flags:
  --config FILE   read the database from the server's config file (store:),
                  so that a PostgreSQL password stays off the command line
  --store STORE   the database, as in the server's config: sqlite:PATH or
                  postgres://USER:PASSWORD@HOST:PORT/DB (default
                  sqlite:DATA/portcullis.db)
  --out FILE      (backup) where to write the copy
  --in FILE       (restore) the copy to restore
` + "\n" + globalFlagsUsage

// storeFlag is --store, the store of --config, or the default store of
// the data directory (as `portcullis serve` resolves them).
func (e *env) storeFlag(store, configFile string) (string, error) {
	switch {
	case store != "" && configFile != "":
		return "", usageErr("give --store or --config, not both")
	case store != "":
		return store, nil
	case configFile != "":
		cfg, err := config.Parse([]string{"--config", configFile}, io.Discard)
		if err != nil {
			return "", inputErr("--config %s: %v", configFile, err)
		}
		return cfg.Store, nil
	}
	return "sqlite:" + filepath.Join(e.dataPath(), "portcullis.db"), nil
}

// dataPath is the data directory: --data-dir, $PORTCULLIS_DATA_DIR or
// ./data.
func (e *env) dataPath() string {
	if e.dataDir != "" {
		return e.dataDir
	}
	if d := os.Getenv(envDataDir); d != "" {
		return d
	}
	return "data"
}

func runBackup(e *env, args []string) error {
	fs := e.flags()
	var store, out, configFile string
	fs.StringVar(&store, "store", "", "")
	fs.StringVar(&configFile, "config", "", "")
	fs.StringVar(&out, "out", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	if out == "" {
		return usageErr("--out FILE is required")
	}
	if store, err = e.storeFlag(store, configFile); err != nil {
		return err
	}
	if _, _, err := backup.Parse(store); err != nil {
		return usageErr("--store: %v", err)
	}
	start := time.Now()
	if err := backup.Backup(e.ctx, store, out); err != nil {
		return &exitError{code: exitFailure, msg: err.Error()}
	}
	fmt.Fprintf(e.stdout, "backup of %s written to %s in %s\nthe master key is not in it: back up %s apart\n",
		redactStore(store), out, time.Since(start).Round(time.Millisecond), filepath.Join(e.dataPath(), "master.key"))
	return nil
}

func runRestore(e *env, args []string) error {
	fs := e.flags()
	var store, in, configFile string
	fs.StringVar(&store, "store", "", "")
	fs.StringVar(&configFile, "config", "", "")
	fs.StringVar(&in, "in", "", "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	if in == "" {
		return usageErr("--in FILE is required")
	}
	if store, err = e.storeFlag(store, configFile); err != nil {
		return err
	}
	kind, _, err := backup.Parse(store)
	if err != nil {
		return usageErr("--store: %v", err)
	}
	// A gateway running on this data directory would go on writing to a
	// file replaced under it.
	sock, err := e.socketPath()
	if err != nil {
		return err
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		return &exitError{code: exitNo, msg: fmt.Sprintf("a gateway is running on %s: stop it before restoring", sock)}
	}
	kept, err := backup.Restore(e.ctx, store, in)
	if err != nil {
		return &exitError{code: exitFailure, msg: err.Error()}
	}
	fmt.Fprintf(e.stdout, "%s restored from %s\n", redactStore(store), in)
	if kind == backup.SQLite && kept != "" {
		fmt.Fprintf(e.stdout, "the database it replaced is kept as %s\n", kept)
	}
	return nil
}

// redactStore hides a password in a PostgreSQL URL for printing.
func redactStore(store string) string {
	if kind, _, err := backup.Parse(store); err != nil || kind != backup.Postgres {
		return store
	}
	u, err := url.Parse(store)
	if err != nil {
		return "the PostgreSQL database"
	}
	return u.Redacted()
}
