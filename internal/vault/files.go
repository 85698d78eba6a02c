package vault

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// maxSecretFileSize bounds what is read from a key file, so a path that
// points at a huge file or a device fails at once instead of eating memory.
// The largest legitimate file, an RSA-16384 PEM, is about 13 KiB.
const maxSecretFileSize = 64 << 10

// loadOrCreate loads the secret file at path with load, or, when it does not
// exist, writes the output of generate there and loads that. what names the
// file in errors ("master key file").
func loadOrCreate(path, what string, generate func() ([]byte, error), load func([]byte) error) (bool, error) {
	data, err := readSecretFile(path, what)
	if err == nil {
		defer clear(data)
		return false, load(data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}

	data, err = generate()
	if err != nil {
		return false, fmt.Errorf("create %s %s: %w", what, path, err)
	}
	defer clear(data)
	err = writeSecretFileExclusive(path, data)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it between our read and write; theirs
		// wins, as it may already be in use.
		existing, err := readSecretFile(path, what)
		if err != nil {
			return false, err
		}
		defer clear(existing)
		return false, load(existing)
	}
	if err != nil {
		return false, fmt.Errorf("create %s %s: %w", what, path, err)
	}
	if err := load(data); err != nil {
		return false, err
	}
	return true, nil
}

// readSecretFile reads a file holding a secret. It refuses a file that group
// or others can access, as sshd does for its host keys: such a file has
// probably been exposed already, and using it silently would hide that.
// The mode is taken from the opened file, not the path, so a file swapped
// in after the check cannot slip through.
func readSecretFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file (mode %s)", what, path, fi.Mode())
	}
	// Windows does not express access in mode bits; there the directory ACL
	// is what protects the file.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s %s has mode %#o, so group or others can access it; a secret must be private to the gateway's user: run chmod 600 %s", what, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if len(data) > maxSecretFileSize {
		clear(data)
		return nil, fmt.Errorf("%s %s is larger than %d KiB; it is not a key file", what, path, maxSecretFileSize>>10)
	}
	return data, nil
}

// writeSecretFileExclusive creates path with mode 0600 holding data, and
// fails with an error matching fs.ErrExist when path already exists.
//
// The data goes to a temporary file that is then hard-linked to path: a
// crash midway leaves no truncated key behind to block the next start, and
// link, like O_EXCL, never replaces an existing file, so two processes
// starting at once cannot overwrite each other's key.
func writeSecretFileExclusive(path string, data []byte) error {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("directory %s does not exist; create it (mode 0700) first", dir)
		}
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after the link, path keeps the data
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// Some filesystems (FAT, some network and FUSE mounts) have no hard
		// links; exclusive create is the next best thing there.
		return writeFileExclusiveDirect(path, data)
	}
	syncDir(dir)
	return nil
}

func writeFileExclusiveDirect(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a new directory entry durable. It is best effort: not every
// platform can fsync a directory, and the file itself is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
