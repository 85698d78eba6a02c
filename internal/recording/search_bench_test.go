package recording

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/portcullis/portcullis/internal/store"
	"github.com/portcullis/portcullis/internal/store/sqlite"
)

// BenchmarkSearch is the search benchmark of issue 4: a generated corpus of
// realistic shell output (BENCH_CORPUS_MIB, default 256 MiB, over
// BENCH_CORPUS_RECORDINGS, default 2,000, recordings; seeded, so every run
// indexes the same bytes) is indexed into a real SQLite store in a temporary
// directory, and then a mix of queries runs BENCH_SEARCH_RUNS times each
// (default 30), reporting p50/p95/p99 per query type and overall (target:
// p50 under 50 ms), after the indexing time, MB/s and database size. Then
// each query type runs once more as a sub-benchmark, for benchstat.
//
// Text goes into the index the way the gateway's flusher sends it: each
// recording's output through its own textIndexer (termtext.Screen, lines
// grouped into chunks of up to 20 lines or 2 KiB, a chunk still filling
// pushed after chunkWait), taken after every command's output (one flush),
// each take one IndexText call from one goroutine (Manager.indexer), while
// the next recording's text is extracted (the flusher). One thing differs:
// the per-recording budget (indexBurst, indexRate) is not applied, so all of
// the corpus is indexed; the report says how much the budget would have let
// through at the simulated pace. The corpus is not written as .cast files;
// that is the recording benchmark's business (BenchmarkOutputText, bench/).
//
// BENCH_SEARCH_DIR=DIR keeps the database in DIR, and a later run with the
// same corpus settings reuses it without indexing; BENCH_SEARCH_CPUPROFILE=
// FILE writes a CPU profile of the timed queries.
func BenchmarkSearch(b *testing.B) {
	cfg := searchConfig{
		bytes:      int64(benchEnvInt(b, "BENCH_CORPUS_MIB", 256, 1, 16<<10)) << 20,
		recordings: benchEnvInt(b, "BENCH_CORPUS_RECORDINGS", 2000, 1, 1000000),
		runs:       benchEnvInt(b, "BENCH_SEARCH_RUNS", 30, 1, 100000),
	}
	ctx := context.Background()
	out := os.Stdout
	fmt.Fprintf(out, "\n== BenchmarkSearch: %d MiB of generated shell output in %d recordings, SQLite FTS5 store\n", cfg.bytes>>20, cfg.recordings)
	fmt.Fprintf(out, "machine: nproc %d, GOMAXPROCS %d, CPU %s, %s, load average at start %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), runtime.Version(), loadAvg())

	// BENCH_SEARCH_DIR keeps the index for later runs with the same
	// corpus settings, which then skip indexing (for working on queries).
	dir := os.Getenv("BENCH_SEARCH_DIR")
	marker := fmt.Sprintf("portcullis BenchmarkSearch corpus v1: %d bytes, %d recordings\n", cfg.bytes, cfg.recordings)
	reuse := false
	if dir == "" {
		dir = b.TempDir()
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "corpus.txt"))
		reuse = err == nil && string(got) == marker
		if !reuse {
			for _, f := range []string{"corpus.txt", "portcullis.db", "portcullis.db-wal", "portcullis.db-shm"} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
					b.Fatal(err)
				}
			}
		}
	}
	dbPath := filepath.Join(dir, "portcullis.db")
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	if reuse {
		fmt.Fprintf(out, "\n-- indexing: skipped, reusing the index an earlier run left in %s (BENCH_SEARCH_DIR)\n", dir)
	} else {
		ix := indexCorpus(b, ctx, st, cfg)
		ix.print(out, dbPath)
		if os.Getenv("BENCH_SEARCH_DIR") != "" {
			if err := os.WriteFile(filepath.Join(dir, "corpus.txt"), []byte(marker), 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}

	// BENCH_SEARCH_CPUPROFILE writes a CPU profile of the timed queries.
	if path := os.Getenv("BENCH_SEARCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	qs := searchQueries()
	results := make([]queryResult, len(qs))
	for i, q := range qs {
		results[i] = runQuery(b, ctx, st, q, cfg.runs)
	}
	printQueryResults(out, results, cfg.runs)
	fmt.Fprintf(out, "load average at end: %s\n\n", loadAvg())

	for _, q := range qs {
		b.Run(q.kind+"/"+benchName(q.text), func(b *testing.B) {
			for b.Loop() {
				if _, err := st.SearchText(ctx, q.text, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type searchConfig struct {
	bytes      int64
	recordings int
	runs       int
}

func benchEnvInt(b *testing.B, name string, def, lo, hi int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		b.Fatalf("%s=%q: want an integer from %d to %d", name, v, lo, hi)
	}
	return n
}

// indexResult is what indexing the corpus took.
type indexResult struct {
	raw, indexed    int64         // output bytes generated; text bytes in chunks
	chunks, calls   int           // chunks; IndexText calls
	wall            time.Duration // first recording created to last chunk indexed
	gen, extract    time.Duration // generating the corpus; termtext and chunking
	store           time.Duration // IndexText calls (the indexer goroutine)
	createFinish    time.Duration // CreateRecording and FinishRecording
	maxCall         time.Duration
	budgetFraction  float64 // of raw output, what the gateway's budget would index
	rareRecordings  map[string]int
	plantedIP       int // recordings holding plantedIP
	plantedIPChunks int
}

func indexCorpus(b *testing.B, ctx context.Context, st *sqlite.Store, cfg searchConfig) indexResult {
	var res indexResult
	res.rareRecordings = map[string]int{}
	sizes := recordingSizes(cfg)
	// One take of one recording per element, as Manager.flushAll queues
	// them; the producer waits when the queue is full, where flushAll
	// would drop the batch and report the store not keeping up.
	queue := make(chan []store.TextChunk, indexQueue)
	var wg sync.WaitGroup
	var storeErr error
	wg.Add(1)
	go func() { // Manager.indexer
		defer wg.Done()
		for bt := range queue {
			if storeErr != nil {
				continue
			}
			t0 := time.Now()
			err := st.IndexText(ctx, bt)
			d := time.Since(t0)
			res.store += d
			res.maxCall = max(res.maxCall, d)
			res.calls++
			if err != nil {
				storeErr = err
			}
		}
	}()

	var budgetIndexed float64
	start := time.Now()
	base := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	for i, size := range sizes {
		id := fmt.Sprintf("rec-%05d", i)
		rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
		g := newShellGen(rng, i, cfg.recordings, size)
		meta := store.Recording{ID: id, User: g.user, Target: g.host, Account: g.account, Source: g.source,
			Action: "shell", StartedAt: base.Add(time.Duration(i) * time.Minute), State: store.RecordingActive}
		t0 := time.Now()
		if err := st.CreateRecording(ctx, meta); err != nil {
			b.Fatal(err)
		}
		res.createFinish += time.Since(t0)

		var x textIndexer
		x.init(id, g.cols, g.rows, true)
		clock := meta.StartedAt
		var us int64
		tokens := float64(indexBurst) // the gateway's budget, simulated alongside
		var last time.Time
		var produced int64
		hasIP := false
		for produced < size {
			t1 := time.Now()
			block := g.command(produced, min(size-produced, 64<<10))
			res.gen += time.Since(t1)
			produced += int64(len(block))
			res.raw += int64(len(block))

			// A command's output arrives after a human pause; the flusher
			// takes it at its next tick.
			pause := time.Duration(2+rng.IntN(25)) * time.Second
			clock = clock.Add(pause)
			us += pause.Microseconds()
			if !last.IsZero() {
				tokens = min(indexBurst, tokens+clock.Sub(last).Seconds()*indexRate)
			}
			last = clock
			if n := float64(len(block)); n <= tokens {
				tokens -= n
				budgetIndexed += n
			} else {
				budgetIndexed += tokens + floodTail
				tokens = 0
			}

			t2 := time.Now()
			x.refill(clock)
			// In SSH-packet-sized pieces, as Output receives them.
			for p := block; len(p) > 0; {
				n := min(len(p), 1+rng.IntN(32<<10))
				x.write(us, p[:n])
				p = p[n:]
				us += int64(rng.IntN(2000))
			}
			chunks := x.take(clock, produced >= size)
			res.extract += time.Since(t2)
			if len(chunks) > 0 {
				queue <- chunks
				res.chunks += len(chunks)
				for _, c := range chunks {
					res.indexed += int64(len(c.Text))
					if strings.Contains(c.Text, plantedIP) {
						res.plantedIPChunks++
						hasIP = true
					}
				}
			}
		}
		for _, w := range g.plantedDone {
			res.rareRecordings[w]++
		}
		if hasIP {
			res.plantedIP++
		}
		t0 = time.Now()
		if err := st.FinishRecording(ctx, id, store.RecordingEnded, clock, produced, ""); err != nil {
			b.Fatal(err)
		}
		res.createFinish += time.Since(t0)
	}
	close(queue)
	wg.Wait()
	res.wall = time.Since(start)
	if storeErr != nil {
		b.Fatal(storeErr)
	}
	res.budgetFraction = budgetIndexed / float64(res.raw)
	return res
}

// recordingSizes spreads cfg.bytes over cfg.recordings, log-uniformly
// between 1/16 and 4 times the mean, scaled to the total.
func recordingSizes(cfg searchConfig) []int64 {
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float64, cfg.recordings)
	var sum float64
	for i := range w {
		w[i] = math.Exp2(rng.Float64()*6 - 4)
		sum += w[i]
	}
	sizes := make([]int64, cfg.recordings)
	var total int64
	for i := range w {
		sizes[i] = max(1, int64(float64(cfg.bytes)*w[i]/sum))
		total += sizes[i]
	}
	sizes[len(sizes)-1] += cfg.bytes - total
	return sizes
}

func (r indexResult) print(out *os.File, dbPath string) {
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
	fmt.Fprintf(out, "\n-- indexing (one extracting goroutine, one IndexText goroutine, as in Manager.Run)\n")
	fmt.Fprintf(out, "  output generated   %d bytes (%.1f MiB); text in chunks %d bytes (%.0f%% of it); %d chunks in %d IndexText calls (%.1f chunks per call)\n",
		r.raw, float64(r.raw)/(1<<20), r.indexed, 100*float64(r.indexed)/float64(r.raw), r.chunks, r.calls, float64(r.chunks)/float64(max(r.calls, 1)))
	fmt.Fprintf(out, "  wall               %v = %.2f MB/s of output (incl. generating it)\n", r.wall.Round(time.Millisecond), mbps(r.raw, r.wall))
	fmt.Fprintf(out, "  generating         %v\n", r.gen.Round(time.Millisecond))
	fmt.Fprintf(out, "  termtext+chunking  %v = %.1f MB/s of output\n", r.extract.Round(time.Millisecond), mbps(r.raw, r.extract))
	fmt.Fprintf(out, "  IndexText          %v = %.2f MB/s of output, %.2f MB/s of chunk text; %.2f ms per call on average, %.0f ms at most\n",
		r.store.Round(time.Millisecond), mbps(r.raw, r.store), mbps(r.indexed, r.store),
		float64(r.store)/float64(time.Millisecond)/float64(max(r.calls, 1)), float64(r.maxCall)/float64(time.Millisecond))
	fmt.Fprintf(out, "  Create/FinishRecording %v\n", r.createFinish.Round(time.Millisecond))
	var db, wal int64
	if fi, err := os.Stat(dbPath); err == nil {
		db = fi.Size()
	}
	if fi, err := os.Stat(dbPath + "-wal"); err == nil {
		wal = fi.Size()
	}
	fmt.Fprintf(out, "  database           %d bytes (%.1f MiB, %.2fx the output) + WAL %d bytes\n", db, float64(db)/(1<<20), float64(db)/float64(r.raw), wal)
	fmt.Fprintf(out, "  gateway budget (256 KiB burst, 64 KiB/s) at the simulated pace (a command's output every 2-26 s) would index about %.0f%% of the output\n", 100*r.budgetFraction)
	fmt.Fprintf(out, "  planted: each rare word in %s recordings; %s in %d recordings (%d chunks)\n", rareSummary(r.rareRecordings), plantedIP, r.plantedIP, r.plantedIPChunks)
}

func rareSummary(m map[string]int) string {
	counts := map[int]int{}
	for _, n := range m {
		counts[n]++
	}
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d (%d words)", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

// Queries.

type searchQuery struct {
	kind, text string
}

func searchQueries() []searchQuery {
	return []searchQuery{
		{"rare", rareWords[3]},
		{"rare", rareWords[17]},
		{"common", "root"},
		{"common", "error"},
		{"two-words", "nginx failed"},
		{"two-words", "postgres root"},
		{"phrase", `"connection refused"`},
		{"phrase", `"no such file or directory"`},
		{"ip", plantedIP},
		{"path", "/var/log/syslog"},
		{"none", "xylophonequartz"},
	}
}

type queryResult struct {
	q     searchQuery
	hits  int
	first time.Duration
	times []time.Duration
}

func runQuery(b *testing.B, ctx context.Context, st *sqlite.Store, q searchQuery, runs int) queryResult {
	r := queryResult{q: q}
	for i := range runs {
		t0 := time.Now()
		hits, err := st.SearchText(ctx, q.text, 0) // the CLI's default limit (100)
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("search %s: %v", q.text, err)
		}
		if i == 0 {
			r.first, r.hits = d, len(hits)
		}
		r.times = append(r.times, d)
	}
	return r
}

func printQueryResults(out *os.File, rs []queryResult, runs int) {
	fmt.Fprintf(out, "\n-- search latency, SearchText(query, limit 100 = CLI default), %d runs per query, ms\n", runs)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "type\tquery\thits\tfirst\tp50\tp95\tp99\tmax\t\n")
	byKind := map[string][]time.Duration{}
	var kinds []string
	var all []time.Duration
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.q.kind, r.q.text, r.hits, msOf(r.first),
			msOf(pct(r.times, 50)), msOf(pct(r.times, 95)), msOf(pct(r.times, 99)), msOf(pct(r.times, 100)))
		if _, ok := byKind[r.q.kind]; !ok {
			kinds = append(kinds, r.q.kind)
		}
		byKind[r.q.kind] = append(byKind[r.q.kind], r.times...)
		all = append(all, r.times...)
	}
	tw.Flush()
	fmt.Fprintf(out, "\n-- per query type\n")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "type\truns\tp50\tp95\tp99\t\n")
	for _, k := range kinds {
		t := byKind[k]
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t\n", k, len(t), msOf(pct(t, 50)), msOf(pct(t, 95)), msOf(pct(t, 99)))
	}
	p50 := pct(all, 50)
	fmt.Fprintf(tw, "all\t%d\t%.1f\t%.1f\t%.1f\t\n", len(all), msOf(p50), msOf(pct(all, 95)), msOf(pct(all, 99)))
	tw.Flush()
	res := "PASS"
	if p50 >= 50*time.Millisecond {
		res = "MISS"
	}
	fmt.Fprintf(out, "overall p50 %.1f ms, target < 50 ms: %s\n", msOf(p50), res)
}

// pct returns the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchName(q string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, q)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// The corpus generator: what a terminal shows during admin sessions, with
// the shell's colored prompt, typed commands (some edited), and their
// output, as a pty delivers it (CRLF line ends).

// plantedIP is one address in ten of 2% of the recordings; other addresses
// are random.
const plantedIP = "10.77.13.201"

// rareWords are each planted in three recordings (see planted).
var rareWords = func() []string {
	syl := []string{"zor", "quix", "vel", "thra", "mund", "pex", "oly", "grav", "ister", "cand", "ulph", "yok"}
	var w []string
	for i := range 40 {
		w = append(w, syl[i%12]+syl[(i/12+5*i+3)%12]+syl[(i/3+1)%12]+"x")
	}
	return w
}()

var (
	genUsers    = []string{"root", "alice", "bob", "deploy", "ubuntu", "jenkins", "carol", "dave"}
	genProcUser = []string{"root", "root", "root", "www-data", "postgres", "redis", "syslog", "messagebus", "systemd+", "alice", "nobody"}
	genHosts    = []string{"web1", "web2", "web3", "db1", "db2", "cache1", "lb1", "build-07", "mon1", "api-eu-1"}
	genServices = []string{"nginx", "postgresql", "redis-server", "ssh", "docker", "kubelet", "cron", "rsyslog", "haproxy", "containerd", "prometheus-node-exporter", "systemd-journald", "grafana-server", "memcached"}
	genWords    = []string{"config", "main", "server", "handler", "utils", "client", "worker", "queue", "cache", "auth", "session", "backup", "report", "deploy", "metrics", "router", "schema", "migrate", "index", "upload", "storage", "billing", "notify", "search", "export", "legacy", "tmp", "data", "assets", "vendor", "docs", "scripts", "tests", "build", "release", "logs"}
	genExts     = []string{".go", ".py", ".js", ".conf", ".log", ".txt", ".sh", ".yaml", ".json", ".tar.gz", ".sql", ".md", "", ".service", ".pem", ".bak"}
	genDirs     = []string{"/etc/nginx", "/var/log", "/var/www/html", "/home/alice/src", "/opt/app", "/srv/backup", "/etc/systemd/system", "/usr/local/bin", "/tmp", "/var/lib/postgresql/15/main"}
	genMonths   = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	genVerbs    = []string{"Fix", "Add", "Remove", "Refactor", "Update", "Handle", "Document", "Speed up", "Revert", "Test"}
	genObjects  = []string{"race in connection pool", "retry for upload handler", "nil check in session cleanup", "TLS config for backend", "metrics endpoint", "migration for billing schema", "timeout in health check", "log rotation", "cache invalidation", "rate limiter", "flaky integration test", "Dockerfile base image"}
	genLevels   = []string{"INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	genLogMsgs  = []string{
		"accepted connection from %s:%d",
		"request completed in %dms status=%d",
		"upstream timed out (110: Connection timed out) while reading response header from upstream, client: %s, port %d",
		"connect() failed (111: Connection refused) while connecting to upstream %s:%d",
		"open() \"/var/www/html/%s\" failed (2: No such file or directory)",
		"worker %d started, pid %d",
		"checkpoint complete: wrote %d buffers (%d%%)",
		"Failed password for invalid user admin from %s port %d ssh2",
		"Accepted publickey for deploy from %s port %d ssh2: ED25519 SHA256:%s",
		"error: could not write to %s: Permission denied",
		"cache miss ratio %d.%d%%, evicted %d keys",
		"job %s finished with exit code %d",
		"disk usage on /dev/nvme0n1p%d at %d%%",
		"GET /api/v1/%s HTTP/1.1 %d %d",
	}
)

type shellGen struct {
	rng                         *rand.Rand
	user, account, host, source string
	cwd                         string
	cols, rows                  int
	rare                        []string // rare words to plant, in the block that starts at or after rareAt
	rareAt                      int64
	plantedDone                 []string
	ipPlanted                   bool // plantedIP is one of the addresses
	tick                        time.Time
	sha                         uint64
	buf                         bytes.Buffer
}

// newShellGen returns the generator of recording i of n, size bytes.
func newShellGen(rng *rand.Rand, i, n int, size int64) *shellGen {
	g := &shellGen{rng: rng}
	g.user = pick(rng, genUsers)
	g.account = pick(rng, []string{"root", "ubuntu", "deploy", "postgres", g.user})
	g.host = pick(rng, genHosts)
	g.source = fmt.Sprintf("10.%d.%d.%d:%d", rng.IntN(256), rng.IntN(256), 1+rng.IntN(254), 40000+rng.IntN(20000))
	g.cwd = pick(rng, genDirs)
	switch rng.IntN(4) {
	case 0:
		g.cols, g.rows = 80, 24
	case 1:
		g.cols, g.rows = 120, 40
	case 2:
		g.cols, g.rows = 160, 48
	default:
		g.cols, g.rows = 200, 60
	}
	// Rare word j goes into recordings j*37, j*37+n/3 and j*37+2n/3, at
	// a random place in the first 90% of the recording (the end of a
	// block may be cut).
	for j, w := range rareWords {
		for k := range 3 {
			if (j*37+k*n/3)%n == i {
				g.rare = append(g.rare, w)
			}
		}
	}
	g.rareAt = rng.Int64N(max(1, size*9/10))
	g.ipPlanted = i%50 == 7
	g.tick = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	g.sha = rng.Uint64()
	return g
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func (g *shellGen) ip() string {
	if g.ipPlanted && g.rng.IntN(10) == 0 {
		return plantedIP
	}
	switch g.rng.IntN(3) {
	case 0:
		return fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254))
	case 1:
		return fmt.Sprintf("192.168.%d.%d", g.rng.IntN(256), 1+g.rng.IntN(254))
	default:
		return fmt.Sprintf("%d.%d.%d.%d", 1+g.rng.IntN(223), g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254))
	}
}

func (g *shellGen) file() string {
	name := pick(g.rng, genWords)
	if g.rng.IntN(3) == 0 {
		name += "_" + pick(g.rng, genWords)
	}
	if g.rng.IntN(4) == 0 {
		name += "-" + strconv.Itoa(g.rng.IntN(1000))
	}
	return name + pick(g.rng, genExts)
}

func (g *shellGen) stamp() time.Time {
	g.tick = g.tick.Add(time.Duration(g.rng.IntN(3000)) * time.Millisecond)
	return g.tick
}

func (g *shellGen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.rng.IntN(16)]
	}
	return string(b)
}

func (g *shellGen) line(format string, args ...any) {
	fmt.Fprintf(&g.buf, format, args...)
	g.buf.WriteString("\r\n")
}

// prompt writes the colored bash prompt and a typed command, sometimes
// with a typo fixed by backspace, as the shell echoes it.
func (g *shellGen) prompt(cmd string) {
	fmt.Fprintf(&g.buf, "\x1b]0;%s@%s: %s\x07\x1b[01;32m%s@%s\x1b[00m:\x1b[01;34m%s\x1b[00m$ ", g.user, g.host, g.cwd, g.user, g.host, g.cwd)
	if len(cmd) > 4 && g.rng.IntN(5) == 0 {
		cut := 2 + g.rng.IntN(len(cmd)-2)
		g.buf.WriteString(cmd[:cut])
		g.buf.WriteString("xq")
		g.buf.WriteString("\b\b\x1b[K")
		g.buf.WriteString(cmd[cut:])
	} else {
		g.buf.WriteString(cmd)
	}
	g.buf.WriteString("\r\n")
}

// command returns one prompt, command and its output, at most limit bytes;
// offset is where it starts in the recording.
func (g *shellGen) command(offset, limit int64) []byte {
	g.buf.Reset()
	budget := int(min(limit, int64(512+g.rng.IntN(24<<10))))
	if g.rng.IntN(8) == 0 {
		budget = int(min(limit, int64(32<<10+g.rng.IntN(32<<10))))
	}
	switch k := g.rng.IntN(100); {
	case k < 14:
		g.ls(budget)
	case k < 34:
		g.logs(budget)
	case k < 44:
		g.ps(budget)
	case k < 48:
		g.top(budget)
	case k < 60:
		g.build(budget)
	case k < 68:
		g.systemctl(budget)
	case k < 76:
		g.gitLog(budget)
	case k < 82:
		g.progress(budget)
	case k < 90:
		g.catConfig(budget)
	default:
		g.misc(budget)
	}
	out := g.buf.Bytes()
	if len(g.rare) > 0 && offset+int64(len(out)) > g.rareAt {
		// The block that covers rareAt starts with a message broadcast to
		// the terminal, one line per rare word.
		var pre bytes.Buffer
		for _, w := range g.rare {
			fmt.Fprintf(&pre, "%s %s[%d]: WARN unexpected key %q in shard %d, skipping\r\n", g.stamp().Format("Jan _2 15:04:05"), pick(g.rng, genServices), 100+g.rng.IntN(30000), w, g.rng.IntN(64))
		}
		if int64(pre.Len()) <= limit {
			g.plantedDone = append(g.plantedDone, g.rare...)
		}
		g.rare = nil
		out = append(pre.Bytes(), out...)
	}
	if int64(len(out)) > limit {
		out = out[:limit]
	}
	return out
}

func (g *shellGen) ls(budget int) {
	dir := pick(g.rng, genDirs)
	g.prompt("ls -l --color=auto " + dir)
	g.line("total %d", g.rng.IntN(2000))
	for g.buf.Len() < budget {
		isDir := g.rng.IntN(5) == 0
		perm, name := "-rw-r--r--", g.file()
		if isDir {
			perm, name = "drwxr-xr-x", "\x1b[01;34m"+pick(g.rng, genWords)+"\x1b[0m"
		} else if g.rng.IntN(6) == 0 {
			perm, name = "-rwxr-xr-x", "\x1b[01;32m"+name+"\x1b[0m"
		}
		owner := pick(g.rng, genProcUser)
		g.line("%s %2d %-8s %-8s %8d %s %2d %02d:%02d %s", perm, 1+g.rng.IntN(4), owner, owner, g.rng.IntN(1<<22),
			pick(g.rng, genMonths), 1+g.rng.IntN(28), g.rng.IntN(24), g.rng.IntN(60), name)
	}
}

func (g *shellGen) logs(budget int) {
	svc := pick(g.rng, genServices)
	switch g.rng.IntN(3) {
	case 0:
		g.prompt("tail -n 500 /var/log/syslog")
	case 1:
		g.prompt("journalctl -u " + svc + " --no-pager")
	default:
		g.prompt("sudo less /var/log/nginx/access.log")
	}
	for g.buf.Len() < budget {
		t := g.stamp()
		if g.rng.IntN(3) == 0 {
			// nginx access log
			g.line("%s - - [%s] \"%s /%s/%s HTTP/1.1\" %d %d \"-\" \"%s\"", g.ip(), t.Format("02/Jan/2006:15:04:05 -0700"),
				pick(g.rng, []string{"GET", "GET", "POST", "PUT", "DELETE"}), pick(g.rng, genWords), g.file(),
				pick(g.rng, []int{200, 200, 200, 301, 304, 404, 500, 502}), g.rng.IntN(50000),
				pick(g.rng, []string{"curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64)", "Go-http-client/1.1", "python-requests/2.31"}))
			continue
		}
		text := g.fill(pick(g.rng, genLogMsgs))
		lvl := pick(g.rng, genLevels)
		if lvl == "ERROR" {
			lvl = "\x1b[31mERROR\x1b[0m"
		}
		g.line("%s %s %s[%d]: %s %s", t.Format("Jan _2 15:04:05"), g.host, svc, 100+g.rng.IntN(30000), lvl, text)
	}
}

// fill replaces the verbs of a log message with plausible values.
func (g *shellGen) fill(msg string) string {
	var sb strings.Builder
	for i := 0; i < len(msg); i++ {
		if msg[i] != '%' || i+1 >= len(msg) {
			sb.WriteByte(msg[i])
			continue
		}
		i++
		switch msg[i] {
		case '%':
			sb.WriteByte('%')
		case 'd':
			sb.WriteString(strconv.Itoa(g.rng.IntN(5000)))
		case 's':
			switch g.rng.IntN(3) {
			case 0:
				sb.WriteString(g.ip())
			case 1:
				sb.WriteString(g.file())
			default:
				sb.WriteString(g.hex(12))
			}
		}
	}
	return sb.String()
}

func (g *shellGen) ps(budget int) {
	g.prompt("ps aux")
	g.line("USER         PID %%CPU %%MEM    VSZ   RSS TTY      STAT START   TIME COMMAND")
	cmds := []string{"/sbin/init", "/lib/systemd/systemd-journald", "nginx: worker process", "postgres: checkpointer", "/usr/sbin/sshd -D",
		"redis-server *:6379", "/usr/bin/containerd", "/usr/bin/dockerd -H fd://", "[kworker/0:1-events]", "bash", "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main",
		"python3 /opt/app/worker.py --queue billing", "node /srv/app/server.js", "/usr/sbin/cron -f", "sshd: alice@pts/0"}
	pid := 1
	for g.buf.Len() < budget {
		pid += 1 + g.rng.IntN(300)
		g.line("%-10s %7d %4.1f %4.1f %6d %5d %-8s %-4s %02d:%02d %3d:%02d %s", pick(g.rng, genProcUser), pid, g.rng.Float64()*30, g.rng.Float64()*10,
			g.rng.IntN(2000000), g.rng.IntN(400000), pick(g.rng, []string{"?", "?", "pts/0", "pts/1"}), pick(g.rng, []string{"Ss", "S", "Sl", "R+", "I<"}),
			g.rng.IntN(24), g.rng.IntN(60), g.rng.IntN(200), g.rng.IntN(60), pick(g.rng, cmds))
	}
}

// top draws frames on the main screen with cursor addressing, as top does
// with TERM=xterm when it cannot use the alternate screen.
func (g *shellGen) top(budget int) {
	g.prompt("top")
	alt := g.rng.IntN(2) == 0
	if alt {
		g.buf.WriteString("\x1b[?1049h")
	}
	for g.buf.Len() < budget {
		t := g.stamp()
		fmt.Fprintf(&g.buf, "\x1b[H\x1b[2Jtop - %s up %d days,  load average: %.2f, %.2f, %.2f\x1b[K\r\n", t.Format("15:04:05"), g.rng.IntN(400), g.rng.Float64()*4, g.rng.Float64()*4, g.rng.Float64()*4)
		fmt.Fprintf(&g.buf, "Tasks: %d total,   %d running, %d sleeping\x1b[K\r\n", 100+g.rng.IntN(300), 1+g.rng.IntN(5), 100+g.rng.IntN(200))
		fmt.Fprintf(&g.buf, "%%Cpu(s): %4.1f us,  %4.1f sy,  0.0 ni, %4.1f id\x1b[K\r\n", g.rng.Float64()*50, g.rng.Float64()*20, g.rng.Float64()*100)
		fmt.Fprintf(&g.buf, "\x1b[7m    PID USER      PR  NI    VIRT    RES  %%CPU  %%MEM     TIME+ COMMAND\x1b[m\x1b[K\r\n")
		for range g.rows - 6 {
			fmt.Fprintf(&g.buf, "%7d %-9s %3d %3d %7d %6d %5.1f %5.1f %3d:%02d.%02d %s\x1b[K\r\n", 1+g.rng.IntN(99999), pick(g.rng, genProcUser), 20, 0,
				g.rng.IntN(3000000), g.rng.IntN(500000), g.rng.Float64()*99, g.rng.Float64()*20, g.rng.IntN(999), g.rng.IntN(60), g.rng.IntN(100), pick(g.rng, genServices))
		}
	}
	if alt {
		g.buf.WriteString("\x1b[?1049l")
	} else {
		g.buf.WriteString("\r\n")
	}
}

func (g *shellGen) build(budget int) {
	if g.rng.IntN(2) == 0 {
		g.prompt("go test ./...")
		for g.buf.Len() < budget {
			pkg := "github.com/acme/" + pick(g.rng, genWords) + "/" + pick(g.rng, genWords)
			switch g.rng.IntN(6) {
			case 0:
				test := "Test" + strings.ToUpper(pick(g.rng, genWords)[:1]) + pick(g.rng, genWords)
				g.line("--- FAIL: %s (%.2fs)", test, g.rng.Float64()*3)
				g.line("    %s_test.go:%d: got %d, want %d", pick(g.rng, genWords), 10+g.rng.IntN(400), g.rng.IntN(100), g.rng.IntN(100))
				g.line("    %s_test.go:%d: error: dial tcp %s:%d: connect: connection refused", pick(g.rng, genWords), 10+g.rng.IntN(400), g.ip(), 1000+g.rng.IntN(9000))
				g.line("FAIL")
				g.line("FAIL\t%s\t%.3fs", pkg, g.rng.Float64()*5)
			case 1:
				g.line("?   \t%s\t[no test files]", pkg)
			default:
				g.line("ok  \t%s\t%.3fs", pkg, g.rng.Float64()*5)
			}
		}
		return
	}
	g.prompt("make -j4")
	for g.buf.Len() < budget {
		src := pick(g.rng, genWords) + ".c"
		switch g.rng.IntN(5) {
		case 0:
			g.line("src/%s:%d:%d: \x1b[01;31merror:\x1b[0m expected ';' before '}' token", src, 1+g.rng.IntN(900), 1+g.rng.IntN(80))
			g.line("  %d |     return %s(%s)", 1+g.rng.IntN(900), pick(g.rng, genWords), pick(g.rng, genWords))
			g.line("      |     \x1b[01;32m^\x1b[0m")
		case 1:
			g.line("src/%s:%d:%d: \x1b[01;35mwarning:\x1b[0m unused variable '%s' [-Wunused-variable]", src, 1+g.rng.IntN(900), 1+g.rng.IntN(80), pick(g.rng, genWords))
		default:
			g.line("gcc -O2 -Wall -Iinclude -c src/%s -o build/%s.o", src, strings.TrimSuffix(src, ".c"))
		}
	}
	g.line("make: *** [Makefile:%d: build/%s.o] Error 1", 10+g.rng.IntN(90), pick(g.rng, genWords))
}

func (g *shellGen) systemctl(budget int) {
	svc := pick(g.rng, genServices)
	g.prompt("systemctl status " + svc)
	failed := g.rng.IntN(4) == 0
	dot, state := "\x1b[0;1;32m●\x1b[0m", "\x1b[0;1;32mactive (running)\x1b[0m"
	if failed {
		dot, state = "\x1b[0;1;31m●\x1b[0m", "\x1b[0;1;31mfailed\x1b[0m (Result: exit-code)"
	}
	t := g.stamp()
	g.line("%s %s.service - %s", dot, svc, strings.ToUpper(svc[:1])+svc[1:]+" daemon")
	g.line("     Loaded: loaded (/lib/systemd/system/%s.service; enabled; vendor preset: enabled)", svc)
	g.line("     Active: %s since %s; %dh ago", state, t.Format("Mon 2006-01-02 15:04:05 MST"), g.rng.IntN(300))
	g.line("   Main PID: %d (%s)", 100+g.rng.IntN(30000), svc)
	g.line("      Tasks: %d (limit: %d)", 1+g.rng.IntN(40), 4000+g.rng.IntN(30000))
	g.line("     Memory: %.1fM", g.rng.Float64()*900)
	g.line("     CGroup: /system.slice/%s.service", svc)
	for g.buf.Len() < budget {
		if failed && g.rng.IntN(3) == 0 {
			g.line("%s %s systemd[1]: %s.service: Failed with result 'exit-code'.", g.stamp().Format("Jan _2 15:04:05"), g.host, svc)
			continue
		}
		g.line("%s %s %s[%d]: %s", g.stamp().Format("Jan _2 15:04:05"), g.host, svc, 100+g.rng.IntN(30000), g.fill(pick(g.rng, genLogMsgs)))
	}
	if g.rng.IntN(2) == 0 {
		g.prompt("sudo systemctl restart " + svc)
	}
}

func (g *shellGen) gitLog(budget int) {
	g.prompt("git log")
	for g.buf.Len() < budget {
		g.sha = g.sha*6364136223846793005 + 1442695040888963407
		user := pick(g.rng, []string{"Alice Martin", "Bob Chen", "Carol Diaz", "Dave Okafor", "Erin Novak"})
		g.line("\x1b[33mcommit %016x%s\x1b[m", g.sha, g.hex(24))
		g.line("Author: %s <%s@example.com>", user, strings.ToLower(strings.Fields(user)[0]))
		g.line("Date:   %s", g.stamp().Format("Mon Jan 2 15:04:05 2006 -0700"))
		g.line("")
		g.line("    %s %s", pick(g.rng, genVerbs), pick(g.rng, genObjects))
		if g.rng.IntN(2) == 0 {
			g.line("")
			g.line("    The %s in %s%s could %s when %s.", pick(g.rng, genWords), pick(g.rng, genWords), pick(g.rng, genExts),
				pick(g.rng, []string{"deadlock", "leak a file descriptor", "return a stale value", "panic"}),
				pick(g.rng, []string{"the upstream is slow", "two workers start at once", "the disk is full", "a request is cancelled"}))
		}
		g.line("")
	}
}

// progress is a download or install with a \r-redrawn progress bar.
func (g *shellGen) progress(budget int) {
	name := g.file()
	g.prompt("curl -fLO https://releases.example.com/" + name)
	total := 1 + g.rng.IntN(900)
	for g.buf.Len() < budget {
		for pct := 0; pct <= 100 && g.buf.Len() < budget; pct += 1 + g.rng.IntN(7) {
			bar := strings.Repeat("#", pct*40/100) + strings.Repeat(" ", 40-pct*40/100)
			fmt.Fprintf(&g.buf, "\r%3d%% [%s] %5.1fM  %5.2fMB/s eta %ds  ", pct, bar, float64(total*pct)/100, g.rng.Float64()*90, g.rng.IntN(90))
		}
		g.buf.WriteString("\r\n")
		g.line("Saved %s (%d MB)", name, total)
		name = g.file()
		if g.buf.Len() < budget {
			g.prompt("apt-get install -y " + pick(g.rng, genServices))
			for i := 0; i < 5 && g.buf.Len() < budget; i++ {
				g.line("Get:%d http://deb.debian.org/debian bookworm/main amd64 %s amd64 %d.%d-%d [%d kB]", i+1, pick(g.rng, genServices), g.rng.IntN(10), g.rng.IntN(30), g.rng.IntN(5), g.rng.IntN(9000))
			}
			fmt.Fprintf(&g.buf, "Reading database ... ")
			for pct := 0; pct <= 100; pct += 5 {
				fmt.Fprintf(&g.buf, "\r(Reading database ... %d%%", pct)
			}
			g.line("\r(Reading database ... %d files and directories currently installed.)", 100000+g.rng.IntN(90000))
		}
	}
}

func (g *shellGen) catConfig(budget int) {
	g.prompt("cat /etc/nginx/sites-enabled/" + pick(g.rng, genWords) + ".conf")
	for g.buf.Len() < budget {
		g.line("server {")
		g.line("    listen %d ssl http2;", pick(g.rng, []int{443, 8443, 80}))
		g.line("    server_name %s.example.com;", pick(g.rng, genWords))
		g.line("    access_log /var/log/nginx/%s.access.log;", pick(g.rng, genWords))
		g.line("    error_log /var/log/nginx/%s.error.log warn;", pick(g.rng, genWords))
		g.line("    location /%s/ {", pick(g.rng, genWords))
		g.line("        proxy_pass http://%s:%d;", g.ip(), 3000+g.rng.IntN(6000))
		g.line("        proxy_read_timeout %ds;", 10+g.rng.IntN(300))
		g.line("    }")
		g.line("}")
	}
}

func (g *shellGen) misc(budget int) {
	switch g.rng.IntN(3) {
	case 0:
		g.prompt("df -h")
		g.line("Filesystem      Size  Used Avail Use%% Mounted on")
		for g.buf.Len() < budget {
			g.line("/dev/nvme%dn1p%d  %3dG  %3dG  %3dG  %2d%% /%s", g.rng.IntN(4), 1+g.rng.IntN(4), 10+g.rng.IntN(900), g.rng.IntN(500), g.rng.IntN(500), g.rng.IntN(100), pick(g.rng, genWords))
		}
	case 1:
		g.prompt("docker ps")
		g.line("CONTAINER ID   IMAGE                 COMMAND                  CREATED        STATUS        PORTS                    NAMES")
		for g.buf.Len() < budget {
			g.line("%s   %-20s  \"%-22s\"  %d hours ago   Up %d hours   0.0.0.0:%d->%d/tcp   %s_%s_%d", g.hex(12), pick(g.rng, genServices)+":latest",
				"/docker-entrypoint.sh", g.rng.IntN(90), g.rng.IntN(90), 1000+g.rng.IntN(9000), 80+g.rng.IntN(9000), pick(g.rng, genWords), pick(g.rng, genWords), 1+g.rng.IntN(9))
		}
	default:
		g.prompt("cat " + pick(g.rng, genWords) + ".txt")
		for g.buf.Len() < budget {
			g.line("cat: %s/%s: No such file or directory", pick(g.rng, genDirs), g.file())
			g.prompt("ls /var/log/syslog*")
			g.line("/var/log/syslog  /var/log/syslog.1  /var/log/syslog.2.gz")
		}
	}
}
