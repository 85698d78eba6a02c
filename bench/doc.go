// Package bench holds the side-by-side comparison of the gateway and direct
// OpenSSH on loopback that `make bench` runs after the Go benchmarks: bulk
// throughput, connection setup and resident memory per idle session, with
// the same key exchange and cipher forced on the client legs, plus a CPU
// profile of the gateway under bulk load. It also measures what session
// recording costs: the same text-heavy exec (`seq 1 N`) through the gateway
// as a user a session-recording policy covers and as one it does not,
// alternating, with the gateway's CPU per GB in each mode, the recording
// file sizes, a check that a recording holds exactly seq's output, the
// same for bulk binary output (head -c N /dev/zero, recorded and not), the
// CPU the catch-up spends afterwards to make one such recording fully
// searchable (alone, with no session running: the index is deferred work
// that yields to live sessions), and a CPU profile of recorded runs. It measures the non-functional contract of
// DESIGN section 5 and issue 4 and reports it; it never fails on a timing.
//
// The comparison is compare_test.go (with recording_test.go), behind the
// "bench" build tag so that `go test ./...` and `make test` never run it.
// It needs root (it runs sshd and creates a throwaway unix user):
//
//	go test -tags bench -run TestCompare -v -count=1 -timeout 20m ./bench/
//
// Environment: PORTCULLIS_BIN (a built gateway, relative to the module
// root; default: build bin/portcullis), BENCH_BYTES (bulk transfer size,
// default 268435456), BENCH_PAIRS (bulk pairs, default 5),
// BENCH_SETUP_PAIRS (default 20), BENCH_SESSIONS (idle sessions, default
// 200), BENCH_PROFILE_SECONDS (each CPU profile, default 10), BENCH_SEQ
// (the recording runs print `seq 1 BENCH_SEQ`, default 20000000, about
// 169 MB), BENCH_REC_PAIRS (recorded/unrecorded pairs, default 5),
// BENCH_PROFILE_DIR (keep the CPU profiles there, as bulk.pprof and
// recorded.pprof, for `go tool pprof bin/portcullis FILE`).
package bench
