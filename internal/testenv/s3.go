package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Versity's S3 gateway (Apache-2.0) serves the real S3 API over a local
// directory; scripts/install-test-deps.sh builds it.
const (
	VersityVersion = "v1.8.0"
	versityTool    = "versitygw"
)

// S3 is a running S3 server (Versity's gateway, posix backend) on
// loopback. Stop and Start take it down and bring it back on the same
// address and directory, for outage tests.
type S3 struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// Addr is 127.0.0.1:PORT.
	Addr string
	// Access and Secret are the root credentials it accepts.
	Access, Secret string
	// Dir holds the buckets: DIR/BUCKET/KEY is an object's file, which a
	// test may change behind the server's back.
	Dir string

	t   testing.TB
	bin string
	mu  sync.Mutex
	cmd *exec.Cmd
	log *syncBuffer
}

// StartS3 starts an S3 server with fresh credentials and an empty root
// directory, with one bucket named bucket if bucket is not empty, and stops
// it when the test ends.
func StartS3(t testing.TB, bucket string) *S3 {
	t.Helper()
	bin := GoTool(t, versityTool, VersityVersion, "versitygw")
	s := &S3{t: t, bin: bin, Dir: t.TempDir(), Access: "pct" + randHex(6), Secret: randHex(20), log: &syncBuffer{}}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	s.Endpoint = "http://" + s.Addr
	if bucket != "" {
		// The posix backend's buckets are the root's directories.
		if err := os.Mkdir(filepath.Join(s.Dir, bucket), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// Start starts the server if it is stopped and waits until it accepts
// connections.
func (s *S3) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, "--port", s.Addr, "--access", s.Access, "--secret", s.Secret, "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw did not listen on %s: %v\n%s", s.Addr, err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: an outage, not a shutdown) if it runs.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// PID returns the server's process id, 0 while it is stopped.
func (s *S3) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// URL returns the recordings_store URL for bucket and prefix on this
// server.
func (s *S3) URL(bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1", bucket, prefix, s.Endpoint)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
