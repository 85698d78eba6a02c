// Package objstore keeps files in S3-compatible object storage (AWS S3,
// MinIO, Ceph, Versity, ...): the shared home of session recordings when
// several gateways must play what any of them recorded.
//
// It wraps minio-go rather than aws-sdk-go-v2: minio-go is one module
// (the AWS SDK is a dozen, with a code-generated surface several times the
// size of what is used here), it speaks to any S3-compatible endpoint with
// path-style addressing and no region discovery to configure, and it
// streams uploads of a known size without buffering them. It is maintained
// by MinIO and tested against AWS S3 as well as MinIO.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNotFound is returned (wrapped) for an object that does not exist.
var ErrNotFound = errors.New("object not found")

// ErrUnavailable is returned (wrapped) by Open when the store did not
// answer.
var ErrUnavailable = errors.New("object store unavailable")

// Config says where objects go and how to log in.
type Config struct {
	// Bucket must exist; Prefix (no leading or trailing slash, may be
	// empty) is put before every key.
	Bucket, Prefix string
	// Endpoint is host[:port]; Secure is true for HTTPS. Empty means
	// AWS S3 (s3.amazonaws.com, HTTPS).
	Endpoint string
	Secure   bool
	// Region is sent in signatures; empty lets the client find it.
	Region string
	// CredentialsFile is an AWS shared credentials file (the
	// ~/.aws/credentials format) and Profile the section read from it
	// ("default" if empty). Without a file the standard environment
	// variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN) are read, then ~/.aws/credentials.
	CredentialsFile, Profile string
}

// ParseURL reads s3://BUCKET/PREFIX?endpoint=URL&region=R&profile=P.
// endpoint is http://host:port or https://host:port (a bare host:port is
// HTTPS); without it the store is AWS S3.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("recordings store %q: %w", raw, err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("recordings store %q: want local or s3://BUCKET/PREFIX?endpoint=URL&region=REGION", raw)
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("recordings store %q: credentials do not go in the URL: use a credentials file or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", u.Redacted())
	}
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Secure: true}
	if c.Bucket == "" {
		return Config{}, fmt.Errorf("recordings store %q: no bucket", raw)
	}
	if strings.Contains(c.Prefix, "//") {
		return Config{}, fmt.Errorf("recordings store %q: empty segment in the prefix", raw)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "profile":
		default:
			return Config{}, fmt.Errorf("recordings store %q: unknown parameter %q (endpoint, region, profile)", raw, k)
		}
	}
	c.Region, c.Profile = q.Get("region"), q.Get("profile")
	if ep := q.Get("endpoint"); ep != "" {
		// Neither the URL nor the endpoint is echoed here: user info in
		// the endpoint is a secret, and the error goes to logs.
		if strings.Contains(ep, "@") {
			return Config{}, errors.New("recordings store: the endpoint holds user info: credentials do not go in the URL: use a credentials file or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
		switch {
		case strings.HasPrefix(ep, "http://"):
			c.Secure = false
			c.Endpoint = strings.TrimPrefix(ep, "http://")
		case strings.HasPrefix(ep, "https://"):
			c.Endpoint = strings.TrimPrefix(ep, "https://")
		case strings.Contains(ep, "://"):
			return Config{}, fmt.Errorf("recordings store %q: endpoint %q: want http:// or https://", raw, ep)
		default:
			c.Endpoint = ep
		}
		c.Endpoint = strings.TrimSuffix(c.Endpoint, "/")
		if c.Endpoint == "" || strings.ContainsAny(c.Endpoint, "/?#@") {
			return Config{}, fmt.Errorf("recordings store %q: endpoint %q: want http(s)://HOST[:PORT]", raw, ep)
		}
	}
	return c, nil
}

// Store is a bucket and prefix. It is safe for concurrent use.
type Store struct {
	cfg Config
	c   *minio.Client
}

// Open connects to the store and checks that the bucket exists and the
// credentials may read it. When the store does not answer at all it
// returns the Store with an error wrapping ErrUnavailable.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	var creds *credentials.Credentials
	if cfg.CredentialsFile != "" {
		if _, err := os.Stat(cfg.CredentialsFile); err != nil {
			return nil, fmt.Errorf("recordings store credentials: %w", err)
		}
		creds = credentials.NewFileAWSCredentials(cfg.CredentialsFile, cfg.Profile)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{Profile: cfg.Profile},
		})
	}
	c, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: cfg.Secure, Region: cfg.Region,
		BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, fmt.Errorf("recordings store %s: %w", cfg, err)
	}
	s := &Store{cfg: cfg, c: c}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "" {
			// No answer from S3 (a network error): the store is
			// configured right as far as can be told, and may be back
			// soon; the caller decides whether to go on.
			return s, fmt.Errorf("recordings store %s: %w: %w", cfg, ErrUnavailable, err)
		}
		return nil, fmt.Errorf("recordings store %s: %w", cfg, err)
	}
	if !ok {
		return nil, fmt.Errorf("recordings store %s: bucket %q does not exist", cfg, cfg.Bucket)
	}
	return s, nil
}

// String names the store for messages, without credentials.
func (c Config) String() string {
	ep := c.Endpoint
	if ep == "" {
		ep = "s3.amazonaws.com"
	}
	return fmt.Sprintf("s3://%s/%s (at %s)", c.Bucket, c.Prefix, ep)
}

// String names the store for messages.
func (s *Store) String() string { return s.cfg.String() }

// key puts the prefix before name.
func (s *Store) key(name string) string {
	if s.cfg.Prefix == "" {
		return name
	}
	return s.cfg.Prefix + "/" + name
}

// Put stores size bytes read from r as name, replacing any object of that
// name. The body carries a CRC32C checksum, which the store checks, so
// that it refuses one damaged on the way. The payload is not signed
// (UNSIGNED-PAYLOAD) and carries no MD5: hashing every byte with SHA-256
// and MD5 tripled what recording to S3 cost the gateway per GB (bench:
// TestRecordingS3), and a recording's own SHA-256, checked on every read,
// already says whether the object is what was recorded.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	_, err := s.c.PutObject(ctx, s.cfg.Bucket, s.key(name), r, size, minio.PutObjectOptions{
		ContentType: "application/x-asciicast", DisableContentSha256: true, AutoChecksum: minio.ChecksumCRC32C,
		DisableMultipart: size < 64<<20,
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", name, wrapErr(err))
	}
	return nil
}

// MinComposePart is the least size of every part but the last that
// Compose takes (S3's least multipart part size).
const MinComposePart = 5 << 20

// Compose stores the concatenation of the objects parts as name, copied
// by the store itself (a multipart upload of server-side copies): the
// bytes do not travel again. Every part but the last must hold at least
// MinComposePart bytes; at most 10,000 parts.
func (s *Store) Compose(ctx context.Context, name string, parts []string) error {
	srcs := make([]minio.CopySrcOptions, len(parts))
	for i, p := range parts {
		srcs[i] = minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: s.key(p)}
	}
	dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: s.key(name)}
	if _, err := s.c.ComposeObject(ctx, dst, srcs...); err != nil {
		return fmt.Errorf("compose %s from %d parts: %w", name, len(parts), wrapErr(err))
	}
	return nil
}

// Get opens object name for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	o, err := s.c.GetObject(ctx, s.cfg.Bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, wrapErr(err))
	}
	// GetObject is lazy: Stat makes the request, so that a missing object
	// is an error here rather than at the first Read.
	if _, err := o.Stat(); err != nil {
		o.Close()
		return nil, fmt.Errorf("get %s: %w", name, wrapErr(err))
	}
	return o, nil
}

// Object is one listed object.
type Object struct {
	// Name is the key without the store's prefix.
	Name string
	Size int64
}

// List returns the objects whose names start with prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	strip := len(s.key(""))
	for o := range s.c.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.key(prefix), Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, wrapErr(o.Err))
		}
		out = append(out, Object{Name: o.Key[strip:], Size: o.Size})
	}
	return out, nil
}

// Delete removes object name; one that does not exist is no error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.c.RemoveObject(ctx, s.cfg.Bucket, s.key(name), minio.RemoveObjectOptions{}); err != nil {
		if err = wrapErr(err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// wrapErr makes S3's "no such key" ErrNotFound.
func wrapErr(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, "NotFound":
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
