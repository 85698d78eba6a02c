// Package bench holds the side-by-side comparison of the gateway and direct
// OpenSSH on loopback that `make bench` runs after the Go benchmarks: bulk
// throughput, connection setup and resident memory per idle session, with
// the same key exchange and cipher forced on the client legs, plus a CPU
// profile of the gateway under bulk load, and for bulk and seq legs the CPU
// per GB of every process on the path (the ssh client, the target's sshd
// and its session processes, counted in a CPU-accounting cgroup, and the
// gateway), with the throughput ratio that CPU allows once every core is
// busy: on a 2-core machine that, not the gateway's own speed, is the
// ceiling of the bulk and seq ratios. It also measures what session
// recording costs: the same text-heavy exec (`seq 1 N`) through the gateway
// as a user a session-recording policy covers and as one it does not,
// alternating, with the gateway's CPU per GB in each mode, the recording
// file sizes, a check that a recording holds exactly seq's output, the
// same for bulk binary output (head -c N /dev/zero, recorded and not), the
// CPU the catch-up spends afterwards to make one such recording fully
// searchable (alone, with no session running: the index is deferred work
// that yields to live sessions), and a CPU profile of recorded runs. Its scale section (scale_test.go) holds 1,000
// and then 5,000 interactive sessions (a pty and a shell each, in-process
// x/crypto clients) through one gateway, with the gateway's RSS,
// goroutines and descriptors per session, the time to open them and a
// leak check after closing them, and runs 2,000 short sessions (`true`,
// 8 at a time) through the gateway and direct for the sessions/s ratio.
// The run ends with one table of every measure of issue 13 against the
// targets of DESIGN section 5, and how long each section took. It
// reports; it never fails on a timing.
//
// The comparison is compare_test.go (with recording_test.go), behind the
// "bench" build tag so that `go test ./...` and `make test` never run it.
// It needs root (it runs sshd and creates a throwaway unix user):
//
//	go test -tags bench -run TestCompare -v -count=1 -timeout 25m ./bench/
//
// Environment: PORTCULLIS_BIN (a built gateway, relative to the module
// root; default: build bin/portcullis), BENCH_BYTES (bulk transfer size,
// default 268435456), BENCH_PAIRS (bulk pairs, default 5),
// BENCH_SETUP_PAIRS (default 20), BENCH_SESSIONS (idle sessions, default
// 200), BENCH_PROFILE_SECONDS (each CPU profile, default 10), BENCH_SEQ
// (the recording runs print `seq 1 BENCH_SEQ`, default 20000000, about
// 169 MB), BENCH_REC_PAIRS (recorded/unrecorded pairs, default 5),
// BENCH_PROFILE_DIR (keep the CPU profiles there, as bulk.pprof and
// recorded.pprof, short.pprof and held-N.pprof, for `go tool pprof
// bin/portcullis FILE`). Scale: BENCH_HELD_SMALL and BENCH_HELD_LARGE
// (sessions held at once, default 1000 and 5000, at most 10000, 0 skips
// the level; each held session costs the machine about 3 MB, mostly the
// target sshd's processes and shell, and a pty: kernel.pty.max is raised
// for the run if it is too low, and put back), BENCH_HELD_CONC (handshakes
// at once while opening, default 8, at most 10: the gateway's default
// per-source pre-authentication cap), BENCH_SHORT (short sessions per
// leg, default 2000, 0 skips them), BENCH_SHORT_CONC (default 8, at most
// 10). With the defaults the whole run takes about 15 minutes on a quiet
// 2-core machine.
package bench
