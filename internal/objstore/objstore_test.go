package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis/portcullis/internal/testenv"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    Config
		wantErr string
	}{
		{in: "s3://rec/gw/casts?endpoint=http://127.0.0.1:9000&region=us-east-1",
			want: Config{Bucket: "rec", Prefix: "gw/casts", Endpoint: "127.0.0.1:9000", Region: "us-east-1"}},
		{in: "s3://rec", want: Config{Bucket: "rec", Secure: true}},
		{in: "s3://rec/p/?endpoint=https://s3.example.com/", want: Config{Bucket: "rec", Prefix: "p", Endpoint: "s3.example.com", Secure: true}},
		{in: "s3://rec/p?endpoint=minio:9000&profile=gw", want: Config{Bucket: "rec", Prefix: "p", Endpoint: "minio:9000", Secure: true, Profile: "gw"}},
		{in: "local", wantErr: "want local or s3://"},
		{in: "gs://rec/p", wantErr: "want local or s3://"},
		{in: "s3:///p", wantErr: "no bucket"},
		{in: "s3://AKIA:secret@rec/p", wantErr: "credentials do not go in the URL"},
		{in: "s3://rec/a//b", wantErr: "empty segment"},
		{in: "s3://rec/p?endpont=http://x", wantErr: `unknown parameter "endpont"`},
		{in: "s3://rec/p?endpoint=ftp://x", wantErr: "want http:// or https://"},
		{in: "s3://rec/p?endpoint=http://x/path", wantErr: "want http(s)://HOST[:PORT]"},
		{in: "s3://rec/p?endpoint=http://", wantErr: "want http(s)://HOST[:PORT]"},
		{in: "s3://rec/p?endpoint=http://u@x", wantErr: "credentials do not go in the URL"},
		{in: "s3://rec/p?endpoint=https://AKIA:secret@s3.example.com", wantErr: "credentials do not go in the URL"},
		{in: "s3://rec/p?endpoint=AKIA:secret@s3.example.com", wantErr: "credentials do not go in the URL"},
		{in: "s3://rec/%zz", wantErr: "invalid URL escape"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) = %+v, %v; want error with %q", tt.in, got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://b/p?endpoint=http://127.0.0.1:1&region=r", "s3://b", "s3://u:p@b/x", "s3://b/a//b", "local", "s3://b/p?endpoint=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseURL(s)
		if err != nil {
			return
		}
		if c.Bucket == "" || strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") || strings.ContainsAny(c.Endpoint, "/?#@") {
			t.Fatalf("ParseURL(%q) accepted %+v", s, c)
		}
	})
}

// TestStoreS3 runs every operation against a real S3 server.
func TestStoreS3(t *testing.T) {
	s3 := testenv.StartS3(t, "rec")
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", s3.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.Secret)
	cfg, err := ParseURL(s3.URL("rec", "gw1"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("[0.1, \"o\", \"x\"]\n"), 1000)
	if err := st.Put(ctx, "a.cast", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "a.seg/0000000000000000", strings.NewReader("one"), 3); err != nil {
		t.Fatal(err)
	}
	// The prefix is where the object lands on the server's disk.
	if got, err := os.ReadFile(filepath.Join(s3.Dir, "rec", "gw1", "a.cast")); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("object on disk: %d bytes, %v", len(got), err)
	}
	rc, err := st.Get(ctx, "a.cast")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	objs, err := st.List(ctx, "a.")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Name != "a.cast" || objs[1].Name != "a.seg/0000000000000000" || objs[1].Size != 3 {
		t.Fatalf("List = %+v", objs)
	}
	if _, err := st.Get(ctx, "missing.cast"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing object: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "a.cast"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "a.cast"); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if _, err := st.Get(ctx, "a.cast"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}

	t.Run("credentials file", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		f := filepath.Join(t.TempDir(), "credentials")
		if err := os.WriteFile(f, []byte("[gw]\naws_access_key_id = "+s3.Access+"\naws_secret_access_key = "+s3.Secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.CredentialsFile, c.Profile = f, "gw"
		if _, err := Open(ctx, c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for name, mod := range map[string]func(*Config){
			"wrong secret":     func(c *Config) { t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong") },
			"no bucket":        func(c *Config) { c.Bucket = "nope" },
			"no such file":     func(c *Config) { c.CredentialsFile = filepath.Join(t.TempDir(), "none") },
			"nothing listens":  func(c *Config) { c.Endpoint = "127.0.0.1:1" },
			"TLS to plain":     func(c *Config) { c.Secure = true },
			"empty env secret": func(c *Config) { t.Setenv("AWS_SECRET_ACCESS_KEY", "") },
		} {
			t.Run(name, func(t *testing.T) {
				t.Setenv("AWS_ACCESS_KEY_ID", s3.Access)
				t.Setenv("AWS_SECRET_ACCESS_KEY", s3.Secret)
				t.Setenv("HOME", t.TempDir()) // no ~/.aws/credentials to fall back on
				c := cfg
				mod(&c)
				if _, err := Open(ctx, c); err == nil {
					t.Fatal("Open succeeded")
				}
			})
		}
	})
}
