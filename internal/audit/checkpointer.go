package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// AuditRetention is the event retention writes after it removed events,
// chained like any other; its signed checkpoint is what verification
// accepts the missing prefix on.
const AuditRetention = "audit.retention"

// Defaults of CheckpointConfig.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
	// retentionEvery is how often retention runs when it is on.
	retentionEvery = time.Hour
)

// CheckpointConfig is what a Checkpointer needs.
type CheckpointConfig struct {
	Store store.Store
	Key   *Key
	// Gateway is this gateway's id, signed into each checkpoint.
	Gateway string
	// File is the append-only copy outside the database
	// (DATA/audit.checkpoints); empty keeps none.
	File string
	// Syslog, when set, gets a copy of each checkpoint.
	Syslog *Syslog
	// Audit writes the audit.retention event; required for Retention.
	Audit *Log
	Log   *slog.Logger
	// Every is how many events this gateway appends before it signs the
	// head (DefaultCheckpointEvery if zero); Interval how long at most
	// between two checkpoints while events come (DefaultCheckpointInterval
	// if zero). Nothing is signed while the trail does not change.
	Every    int
	Interval time.Duration
	// Retention removes events older than this (hourly); zero keeps them.
	Retention time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Checkpointer signs the head of the audit trail every so often and runs
// audit retention. Its Run goroutine is owned by the server and ends with
// its context; Checkpoint is also called once at shutdown, after the last
// session's end event.
type Checkpointer struct {
	cfg      CheckpointConfig
	kick     chan struct{}
	appended atomic.Int64 // events this gateway stored since the last checkpoint

	// mu serializes checkpoints, so that two never race on lastID.
	mu       sync.Mutex
	lastID   int64
	lastHash string
}

// NewCheckpointer returns a Checkpointer; call Log.SetCheckpointer to let
// it count events.
func NewCheckpointer(cfg CheckpointConfig) *Checkpointer {
	if cfg.Every <= 0 {
		cfg.Every = DefaultCheckpointEvery
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultCheckpointInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Checkpointer{cfg: cfg, kick: make(chan struct{}, 1)}
}

// PublicKey returns the audit key as an OpenSSH authorized_keys line.
func (c *Checkpointer) PublicKey() string { return c.cfg.Key.AuthorizedKey() }

// noteAppend counts one stored event and wakes Run after Every of them.
func (c *Checkpointer) noteAppend() {
	if c.appended.Add(1) >= int64(c.cfg.Every) {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// Run signs the head every Interval if it changed, and sooner after Every
// events; runs retention at start and hourly when it is on; and returns
// when ctx ends (the shutdown checkpoint is the caller's, once nothing
// writes events any more).
func (c *Checkpointer) Run(ctx context.Context) {
	// A head already signed (by the last run, or another gateway) is not
	// signed again after a restart.
	if last, err := c.cfg.Store.LatestCheckpoint(ctx, store.CheckpointHead); err == nil {
		c.mu.Lock()
		c.lastID, c.lastHash = last.EventID, last.Hash
		c.mu.Unlock()
	}
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	var retain <-chan time.Time
	if c.cfg.Retention > 0 {
		rt := time.NewTicker(retentionEvery)
		defer rt.Stop()
		retain = rt.C
		c.pruneLogged(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.kick:
		case <-retain:
			c.pruneLogged(ctx)
			continue
		}
		if _, _, err := c.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Log.Error("audit checkpoint", "err", err)
		}
	}
}

func (c *Checkpointer) pruneLogged(ctx context.Context) {
	if err := c.Prune(ctx); err != nil && ctx.Err() == nil {
		c.cfg.Log.Error("audit retention", "err", err)
	}
}

// Checkpoint signs the trail's head, unless it is what this gateway
// signed last, and stores it in the store, the file and syslog. It
// reports whether it signed one. The store's copy failing is an error; so
// is the file's, after the store has it.
func (c *Checkpointer) Checkpoint(ctx context.Context) (store.AuditCheckpoint, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.appended.Store(0)
	id, hash, err := c.cfg.Store.AuditHead(ctx)
	if err != nil {
		return store.AuditCheckpoint{}, false, fmt.Errorf("audit checkpoint: %w", err)
	}
	if id == 0 || (id == c.lastID && hash == c.lastHash) {
		return store.AuditCheckpoint{}, false, nil
	}
	cp := c.cfg.Key.Sign(store.AuditCheckpoint{Kind: store.CheckpointHead, EventID: id, Hash: hash,
		Time: c.cfg.Now(), Gateway: c.cfg.Gateway})
	if cp.Seq, err = c.cfg.Store.AppendCheckpoint(ctx, cp); err != nil {
		return store.AuditCheckpoint{}, false, fmt.Errorf("audit checkpoint: %w", err)
	}
	c.lastID, c.lastHash = id, hash
	return cp, true, c.copyOut(cp)
}

// copyOut writes cp to the places outside the database.
func (c *Checkpointer) copyOut(cp store.AuditCheckpoint) error {
	if c.cfg.Syslog != nil {
		c.cfg.Syslog.enqueueCheckpoint(cp)
	}
	if c.cfg.File == "" {
		return nil
	}
	return appendCheckpointFile(c.cfg.File, cp)
}

// Prune removes events older than Retention (never the newest) with its
// signed retention checkpoint, in one transaction, then records what it
// did as an audit.retention event. Without Retention it does nothing.
func (c *Checkpointer) Prune(ctx context.Context) error {
	if c.cfg.Retention <= 0 {
		return nil
	}
	now := c.cfg.Now()
	n, cp, err := c.cfg.Store.PruneAudit(ctx, now.Add(-c.cfg.Retention), func(first int64, anchor string) (store.AuditCheckpoint, error) {
		return c.cfg.Key.Sign(store.AuditCheckpoint{Kind: store.CheckpointRetention, EventID: first, Hash: anchor,
			Time: now, Gateway: c.cfg.Gateway}), nil
	})
	if err != nil {
		return fmt.Errorf("audit retention: %w", err)
	}
	if n == 0 {
		return nil
	}
	cerr := c.copyOut(cp)
	werr := c.cfg.Audit.Write(ctx, store.AuditEvent{Type: AuditRetention, Outcome: Info, User: "retention",
		Message: fmt.Sprintf("%d audit events older than %s removed by retention; the trail continues from event %d", n, c.cfg.Retention, cp.EventID),
		Detail:  map[string]any{"removed": n, "first_kept_id": cp.EventID, "continues_from": cp.Hash}})
	return errors.Join(cerr, werr)
}

// Verify checks the trail (Verify) against the latest checkpoints in the
// store, every checkpoint in the file, and extra (a copy kept elsewhere).
// A file that does not read fails verification: it is evidence.
func (c *Checkpointer) Verify(ctx context.Context, extra []store.AuditCheckpoint) (Verification, error) {
	var cps []store.AuditCheckpoint
	for _, kind := range []string{store.CheckpointHead, store.CheckpointRetention} {
		cp, err := c.cfg.Store.LatestCheckpoint(ctx, kind)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return Verification{}, fmt.Errorf("verify audit trail: %w", err)
		}
		cps = append(cps, cp)
	}
	if c.cfg.File != "" {
		fromFile, err := readCheckpointFile(c.cfg.File)
		if err != nil {
			return Verification{FirstBad: &BadEntry{Problem: ProblemBadCheckpoint,
				Detail: fmt.Sprintf("the checkpoint file does not read: %v", err)}}, nil
		}
		cps = append(cps, fromFile...)
	}
	return Verify(ctx, c.cfg.Store, c.cfg.Key.Public(), append(cps, extra...))
}
