package filexfer

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// RsyncCommand is an rsync server command ("rsync --server [--sender]
// OPTIONS . PATH...") as a stock rsync client sends it. Its stream (the
// file list and the data) is multiplexed, negotiated and compressed, and
// is not judged; the command is.
type RsyncCommand struct {
	// Sender is set when the target sends files (the client downloads).
	Sender bool
	// Paths are the sources (Sender) or the one destination.
	Paths []string
	// Links and Devices are set when the receiving side may create
	// symbolic links (-l, part of -a) or device and special files (-D).
	Links, Devices bool
}

// rsyncShort are the one-letter options a server command may carry
// (before the "e.FLAGS" capability string). Options that take a path or
// run something (-T temp-dir, -M remote-option, -B, -f, -F, -e as a
// shell) are absent, and so is -K, with which the receiver follows
// symbolic links to directories that already exist in the destination.
const rsyncShort = "vqcrRtpogDlLkHSxzWIunbdmiJAXUCEyP0h8"

// rsyncLong are the long options a server command may carry. Those that
// name a path on the target (--log-file, --temp-dir, --partial-dir,
// --backup-dir, --compare-dest, --link-dest, --copy-dest, --files-from,
// --write-batch, --read-batch, --config) or change what runs (--daemon,
// --rsync-path, --remote-option) are absent: a log file or batch written
// to a start-up file would run its contents.
var rsyncLong = map[string]bool{
	"--server": true, "--sender": true, "--delete": true, "--delete-before": true, "--delete-during": true,
	"--delete-after": true, "--delete-delay": true, "--delete-excluded": true, "--partial": true, "--inplace": true,
	"--append": true, "--append-verify": true, "--size-only": true, "--ignore-times": true, "--ignore-existing": true,
	"--existing": true, "--update": true, "--checksum": true, "--no-implied-dirs": true, "--mkpath": true,
	"--numeric-ids": true, "--safe-links": true, "--munge-links": true, "--omit-dir-times": true,
	"--omit-link-times": true, "--force": true, "--prune-empty-dirs": true, "--ignore-errors": true,
	"--fsync": true, "--open-noatime": true, "--delay-updates": true, "--whole-file": true, "--no-whole-file": true,
	"--timeout": true, "--contimeout": true, "--bwlimit": true, "--compress-level": true, "--max-size": true,
	"--min-size": true, "--max-delete": true, "--modify-window": true, "--stats": true,
}

// ParseRsyncCommand parses an rsync server command, refusing options a
// file-transfer grant must not pass. expand is as for [ParseSCPCommand].
func ParseRsyncCommand(command string, expand func(string) (string, error)) (*RsyncCommand, error) {
	words := shellWords(command)
	if len(words) < 2 || path.Base(words[0]) != "rsync" || words[1] != "--server" {
		return nil, errors.New("not an rsync server command")
	}
	c := &RsyncCommand{}
	i := 2
	for ; i < len(words); i++ {
		w := words[i]
		if w == "." {
			i++
			break
		}
		switch {
		case strings.HasPrefix(w, "--"):
			name, _, _ := strings.Cut(w, "=")
			if !rsyncLong[name] {
				return nil, fmt.Errorf("rsync option %s is not allowed through a file-transfer grant", name)
			}
			if name == "--sender" {
				c.Sender = true
			}
		case strings.HasPrefix(w, "-") && len(w) > 1:
			opts, _, _ := strings.Cut(w[1:], "e.")
			if strings.HasPrefix(w[1:], "e") && !strings.HasPrefix(w[1:], "e.") {
				return nil, fmt.Errorf("rsync option %s is not allowed through a file-transfer grant", w)
			}
			for _, f := range opts {
				if !strings.ContainsRune(rsyncShort, f) {
					return nil, fmt.Errorf("rsync option -%c is not allowed through a file-transfer grant", f)
				}
				c.Links = c.Links || f == 'l'
				c.Devices = c.Devices || f == 'D'
			}
		default:
			return nil, fmt.Errorf("unexpected rsync argument %q", w)
		}
	}
	if i > len(words) || words[i-1] != "." {
		return nil, errors.New("rsync server command without its \".\" argument")
	}
	for _, p := range words[i:] {
		if p == "" {
			p = "."
		}
		p, err := expand(p)
		if err != nil {
			return nil, err
		}
		c.Paths = append(c.Paths, p)
	}
	switch {
	case len(c.Paths) == 0 && !c.Sender:
		c.Paths = []string{"."}
	case len(c.Paths) == 0:
		return nil, errors.New("rsync --sender without a source")
	case len(c.Paths) > 1 && !c.Sender:
		return nil, errors.New("rsync receiver with more than one destination")
	}
	return c, nil
}
