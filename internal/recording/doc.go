// Package recording records SSH sessions as asciicast v2 files, keeps their
// metadata in the store, feeds the keyword-search index while they run, and
// reads and plays them back.
//
// # What a recording contains
//
// One file per session, DIR/ID.cast (mode 0600), in asciicast v2
// (https://docs.asciinema.org/manual/asciicast/v2/), which the stock
// `asciinema cat` and `asciinema play` read. The first line is a header:
// terminal width and height, start time, TERM, a title
// "USER~ACCOUNT~TARGET" and a "portcullis" object with the session id,
// user, target, account, source address, action and (for exec) command.
// Every later line is one event, [seconds, type, data], with the time
// relative to the start in microseconds:
//
//   - "o": what the target sent to the user's terminal (stdout and stderr),
//     always;
//   - "i": what the user typed, only when the policy says record_input;
//   - "r": a window change, "COLSxROWS".
//
// Data is valid UTF-8: a character split across two SSH packets is joined
// into the later event, and bytes that are not UTF-8 are recorded as U+FFFD.
// Exec sessions are recorded like shells.
//
// # Written as it happens
//
// Output is appended to a memory buffer on the session's path and written to
// the file by one flusher ([Manager.Run]) every 500 ms, each time as whole
// lines in one write, so an active recording is always a valid file up to
// its last complete event, and a gateway killed with SIGKILL loses at most
// the last second. (Surviving a power cut is left to the kernel's writeback:
// the file is fsynced when the recording is created and when it ends, not on
// every flush.) At the next start, [Manager.Recover] cuts a torn last line
// and marks such recordings interrupted. When a recording ends, its size and
// SHA-256 go into the store (and from there into the audit trail).
//
// # Binary output
//
// A `cat` of a large binary file must not make a recording explode, so
// output is bounded per burst of binary output:
//
//   - A chunk of output is binary when it holds a NUL byte, or when more
//     than one byte in eight is not text (invalid UTF-8, or a control
//     character other than BEL, BS, TAB, LF, VT, FF, CR, SO, SI and ESC).
//   - A burst starts with a binary chunk (a chunk is at most 64 KiB of one
//     write) and ends when output pauses for a second, when 64 KiB of text
//     follows it, or when the session ends.
//   - Of a burst, the first 1 MiB and the last 1 MiB of output are recorded;
//     in between, one event says how much was left out:
//     "[portcullis: N bytes of binary output not recorded]". The last MiB is
//     held in memory until the burst ends, so a gateway killed during a
//     burst loses it.
//
// Text output is recorded in full. If the disk cannot keep up and 64 MiB of
// output waits for it, further output is left out and a marker says how much
// ("[portcullis: N bytes of output not recorded: ...]"); that, like any error
// writing the file, is reported through [Meta.OnFailure]. A store that
// refuses writes is not: the recording's row is written when it takes
// writes again (rowsync.go), and its text is indexed from the file.
//
// # Search
//
// The flusher also feeds output through a virtual terminal
// (internal/termtext), so the index holds the lines the user saw, with
// cursor movement and line editing applied, not raw escape sequences. Lines
// are indexed in chunks of up to 20 lines or 2 KiB with the time offset of
// their first line and, where later lines appeared later, their times
// (store.TextChunk.Times): a line's time is that of the event that
// finished it (for a typed command, its Enter), and a search hit is
// reported at the line that holds the match. Typed input is not indexed here (commands go to the
// command history). Indexing costs far more than recording (the SQLite
// full-text index takes a few MB/s), so text scrolling faster than anyone
// reads is indexed in part: each recording may index 256 KiB at once and
// 64 KiB per second after that; a flush holding more output than the budget
// left is skipped from its first byte, and so is output until the flood
// ends, and then the last 16 KiB of the flood, which holds the screen the
// user was left with, is indexed. Binary bursts are not indexed. A
// recording is always complete; only its live index thins out. Once the
// session ends, a recording whose live index missed text (the budget, or a
// store that refused it) is indexed again from its file, without a budget,
// by the catch-up Run owns (catchup.go), so every ended recording is fully
// searchable; store.Recording.IndexState says where each one is. While
// sessions are being recorded the catch-up works about a tenth of the
// time, so that indexing (some fifty times recording's CPU per byte of
// `seq`-like output) does not take a core from them, and not at all while
// one floods output (for a second after a recorder last buffered 4 MiB
// between two flushes); once no session has been recorded for five
// seconds it runs at full speed.
//
// # Shared object storage
//
// With an object store (SetObjectStore; recordings_store: s3://...), the
// file is still written first and is the spool: segments of it are
// shipped every 2 s while the session runs and the whole file once it
// ends (ship.go), so that every gateway sharing the store reads every
// recording, watches live sessions recorded elsewhere through the
// segments, and a gateway whose disk is lost loses only the last seconds.
// Check lists recordings that are missing or changed.
package recording
