package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis/portcullis/internal/inventory"
	"github.com/portcullis/portcullis/internal/resource"
)

const applyUsage = `Usage: portcullis apply -f FILE [--dry-run]

Creates or updates every resource in a YAML stream of documents ("---"
separated, each with kind and name), in one transaction: all or nothing.
Applying the same file again changes nothing. Errors name the document and
the field.

An Account's private_key_file is read here, relative to FILE's directory
(the current directory for stdin), and sent to the gateway, which seals it;
the key is never printed back.

Prints one line per resource: "KIND/NAME created", "configured" or "unchanged".
Warnings go to stderr: a policy naming a user that does not exist yet, or an
update that removes a field that had a value (a User applied without its
ssh_keys loses them: a resource is replaced by what the file says). An
Account applied without a key keeps its key: that is not a removal.

--dry-run checks the stream as apply does and prints what it would do,
"would be created", "would be updated" with each changed field (before ->
after), or "unchanged", and changes nothing (nothing is audited either).

Flags:
  -f, --filename FILE   the YAML stream; - reads stdin
  --dry-run             show what would change; change nothing
` + "\n" + globalFlagsUsage

// maxKeyFile bounds a private_key_file: no SSH private key comes close, and
// a wrong path (a log, a disk image) must not be read whole.
const maxKeyFile = 64 << 10

func runApply(e *env, args []string) error {
	fs := e.flags()
	var file string
	fs.StringVar(&file, "f", "", "")
	fs.StringVar(&file, "filename", "", "")
	dryRun := fs.Bool("dry-run", false, "")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q (the stream is given with -f FILE)", pos[0])
	}
	if file == "" {
		return usageErr("-f FILE is required (- reads stdin)")
	}
	data, name, dir, err := readStream(e, file)
	if err != nil {
		return err
	}
	objs, err := resource.DecodeYAML(data)
	if err != nil {
		return inputErr("%s: %v", name, err)
	}
	if len(objs) == 0 {
		return inputErr("%s: no resources found", name)
	}
	if err := loadKeyFiles(objs, dir); err != nil {
		return inputErr("%s: %v", name, err)
	}
	body, err := json.Marshal(objs)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	c, err := e.api()
	if err != nil {
		return err
	}
	var q url.Values
	if *dryRun {
		q = url.Values{"dry_run": {"true"}}
	}
	var res inventory.ApplyResult
	if err := c.do(e.ctx, http.MethodPost, "/api/v1/apply", q, "application/json", body, &res); err != nil {
		var ee *exitError
		if errors.As(err, &ee) && ee.code == exitUsage {
			// The gateway's message names the document; say which file.
			ee.msg = name + ": " + ee.msg
		}
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s: %s\n", name, w)
	}
	created, updated := "created", "configured"
	if *dryRun {
		if !res.DryRun {
			// An older gateway ignored dry_run and applied: say so.
			return fmt.Errorf("the gateway does not support --dry-run and APPLIED the stream")
		}
		created, updated = "would be created", "would be updated"
	}
	state := map[string]string{}
	for _, k := range res.Created {
		state[k] = created
	}
	for _, k := range res.Updated {
		state[k] = updated
	}
	for _, k := range res.Unchanged {
		state[k] = "unchanged"
	}
	diffs := map[string][]inventory.FieldDiff{}
	for _, d := range res.Diffs {
		diffs[d.Key] = d.Fields
	}
	// In stream order, which is the order the user wrote.
	for _, o := range objs {
		key := string(o.GetKind()) + "/" + o.GetName()
		s, ok := state[key]
		if !ok {
			continue
		}
		fmt.Fprintf(e.stdout, "%s %s\n", key, s)
		if *dryRun {
			for _, f := range diffs[key] {
				fmt.Fprintf(e.stdout, "  %s: %s -> %s\n", f.Field, diffValue(f.Before), diffValue(f.After))
			}
		}
	}
	if *dryRun {
		fmt.Fprintln(e.stderr, "dry run: nothing was changed")
	}
	return nil
}

// maxDiffValue bounds a value shown in a diff line: a long key list must
// not push the rest of the plan off the screen.
const maxDiffValue = 120

// diffValue shows one side of a field diff: its JSON, or (none).
func diffValue(v json.RawMessage) string {
	if v == nil {
		return "(none)"
	}
	s := escapeControls(string(v))
	if r := []rune(s); len(r) > maxDiffValue {
		s = string(r[:maxDiffValue]) + "..."
	}
	return s
}

// readStream reads FILE or stdin, refusing input larger than the gateway
// accepts before sending it. It returns the data, the name to use in
// messages, and the directory key files are relative to.
func readStream(e *env, file string) ([]byte, string, string, error) {
	var (
		r    io.Reader
		name = file
		dir  = filepath.Dir(file)
	)
	if file == "-" {
		r, name, dir = e.stdin, "stdin", "."
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", "", inputErr("%v", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, resource.MaxStreamBytes+1))
	if err != nil {
		return nil, "", "", inputErr("read %s: %v", name, err)
	}
	if len(data) > resource.MaxStreamBytes {
		return nil, "", "", inputErr("%s is larger than %d bytes (%d MiB): split it into several files",
			name, resource.MaxStreamBytes, resource.MaxStreamBytes>>20)
	}
	return data, name, dir, nil
}

// loadPasswordFile replaces a database Account's password_file with the
// password it holds (its first line), the same way as a key file.
func loadPasswordFile(acc *resource.Account, dir string) error {
	path := acc.PasswordFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	data, err := readKeyFile(path)
	if err != nil {
		return fmt.Errorf("field password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return fmt.Errorf("field password_file: %s holds no password on its first line", path)
	}
	acc.Password, acc.PasswordFile = pw, ""
	if err := acc.Validate(); err != nil {
		return fmt.Errorf("%w (in %s)", err, path)
	}
	return nil
}

// loadKeyFiles replaces each Account's private_key_file with the key it
// names: the gateway cannot read the admin's files, so the key travels in
// the request (over the 0600 socket) and is sealed there.
func loadKeyFiles(objs []resource.Object, dir string) error {
	for i, o := range objs {
		acc, ok := o.(*resource.Account)
		if !ok || acc.PrivateKeyFile == "" && acc.PasswordFile == "" {
			continue
		}
		docErr := func(err error) error {
			return &resource.DocError{Index: i + 1, Kind: o.GetKind(), Name: o.GetName(), Err: err}
		}
		if acc.PasswordFile != "" {
			if err := loadPasswordFile(acc, dir); err != nil {
				return docErr(err)
			}
			continue
		}
		path := acc.PrivateKeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		key, err := readKeyFile(path)
		if err != nil {
			return docErr(fmt.Errorf("field private_key_file: %w", err))
		}
		acc.PrivateKey, acc.PrivateKeyFile = string(key), ""
		if err := acc.Validate(); err != nil {
			return docErr(fmt.Errorf("%w (in %s)", err, path))
		}
	}
	return nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	key, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(key) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d KiB: not a private key", path, maxKeyFile>>10)
	}
	return key, nil
}
