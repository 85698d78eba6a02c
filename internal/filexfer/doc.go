// Package filexfer turns the raw bytes of a file-transfer channel into the
// file operations an auditor wants to see: which file went which way, how
// many bytes, what was removed, renamed or created, and what the target
// refused.
//
// The gateway bridges SSH channels byte for byte and calls the observers
// here with a copy of what passes, one call per chunk in each direction.
// The observers are passive: they never change, hold back or delay the
// data, they never block on anything but their own short mutex, and they
// keep no more than a bounded amount of state however long the transfer
// runs. They parse incrementally, so a chunk may end anywhere, even inside
// a length prefix.
//
// # What is enforced
//
// The guards ([SFTPGuard], [SCPGuard]) are not passive: they sit in the
// data path, hold each request or record until a [Judge] has decided it,
// and answer a refused one themselves in the protocol's own way, so the
// target never sees it and the stream stays framed. [ParseSCPCommand] and
// [ParseRsyncCommand] read the paths and options of the transfer commands
// for the same judge. Which paths are allowed is not decided here.
//
// # What is observed
//
//   - [SFTP]: an "sftp" subsystem channel speaking SFTP protocol version 3
//     (draft-ietf-secsh-filexfer-02), which is what OpenSSH's sftp, scp
//     (which uses SFTP by default since OpenSSH 9.0) and sftp-server speak.
//     Reported: files opened and closed (upload or download with the bytes
//     the target acknowledged writing or returned reading; an open the
//     target refused is an upload or download with its error), remove, rename
//     (also posix-rename@openssh.com), mkdir, rmdir, setstat (also fsetstat
//     and lsetstat@openssh.com), symlink, and hardlink@openssh.com; each
//     with the target's error if it refused.
//   - [SCP]: a legacy scp exec channel ("scp -t TARGET", the client
//     uploads; "scp -f SOURCE", the client downloads; what `scp -O` runs).
//     Reported: one upload or download per file, with its path and size,
//     and the directories and files the receiving side refused.
//
// # What is not observed
//
//   - SFTP versions other than 3: a VERSION other than 3 stops the tracker.
//   - Reads of metadata (stat, lstat, fstat, realpath, readlink, opendir,
//     readdir, statvfs, ...): they move no file data and change nothing.
//   - Server-side copies (copy-data, "cp" in sftp) are not followed: the
//     destination shows up as an upload of the bytes the client itself
//     wrote, usually none.
//   - rsync (an "rsync --server ..." exec channel) is not parsed: its
//     protocol is multiplexed, negotiated and compressed, and the exec
//     command itself is in the audit trail already. The same goes for any
//     exec command that is not a plain legacy scp server command, such as
//     "tar" or "cat" used to move files.
//   - Where the target put a legacy scp upload when the client named a
//     target that may or may not be an existing directory: see [NewSCP].
//   - Paths are reported as the client sent them (SFTP clients usually send
//     absolute paths; scp paths may be relative to the account's home
//     directory or use "~"), byte for byte, and cut at 4096 bytes. Escaping
//     them for display is the caller's job.
//
// # Ordering and malformed input
//
// A response can only be matched to its request if the request was seen
// first, so the caller must pass client bytes to FromClient before
// forwarding them to the target, and target bytes to FromServer before
// forwarding them to the client (observe, then write). Requests and
// responses are then seen in an order that cannot put a response before its
// request.
//
// # Bounds
//
// A tracker buffers at most the fields it needs of one packet or record
// per direction (never file data; an SFTP packet over 256 KiB other than
// WRITE or DATA is skipped unparsed), tracks at most 1024 SFTP requests
// awaiting a response and 1024 open handles (the oldest is dropped, an open
// file being reported as it stands), and keeps paths of at most 4096 bytes:
// a few KiB in practice and about 14 MiB in the worst case a hostile peer
// can force. scp control records are bounded at 8 KiB, directory nesting at
// 256 levels.
//
// Input that does not parse stops the tracker: it reports what it had
// already confirmed (files still open, as they are), then nothing more, and
// Err says why. A tracker never panics on any input.
package filexfer

// Op is one file operation seen in a transfer.
type Op struct {
	// Kind is "upload" (file data from the client to the target),
	// "download" (from the target to the client), "remove", "rename",
	// "mkdir", "rmdir", "setstat", "symlink" or "hardlink".
	Kind string
	// Path is the file the operation is about: for a symlink or hardlink,
	// the new link.
	Path string
	// Path2 is the new name of a rename, or what a symlink or hardlink
	// points to; empty otherwise.
	Path2 string
	// Bytes is how many bytes of file data moved, for upload and download:
	// for SFTP the bytes the target acknowledged writing or returned
	// reading, for scp the bytes that crossed the channel.
	Bytes int64
	// Error is non-empty when the operation failed or may not have
	// completed: the target's (or, for scp downloads, the client's) error
	// message, or a note such as "no response" for an operation still
	// pending when the channel closed.
	Error string
}

// maxPath bounds every path kept in memory. Linux paths cannot be longer
// (PATH_MAX), so a longer one is cut rather than kept whole, which bounds
// the memory of the tracked requests and handles.
const maxPath = 4096

// boundPath copies b into a string of at most maxPath bytes.
func boundPath(b []byte) string {
	if len(b) > maxPath {
		return string(b[:maxPath]) + "..."
	}
	return string(b)
}
