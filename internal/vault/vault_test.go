package vault

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func newTestVault(t testing.TB) *Vault {
	t.Helper()
	key := make([]byte, masterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	v, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantErrContains(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not contain %q", err, w)
		}
	}
}

func TestSealOpen(t *testing.T) {
	v := newTestVault(t)
	other := newTestVault(t)
	const aad = "account:web1/svc-stats"

	tests := []struct {
		name      string
		plaintext []byte
		openWith  *Vault
		openAAD   string
		mutate    func([]byte) []byte
		wantErr   []string
		wantAuth  bool // error must wrap ErrAuthentication
	}{
		{name: "round trip", plaintext: []byte("secret key material")},
		{name: "empty plaintext", plaintext: []byte{}},
		{name: "large plaintext", plaintext: bytes.Repeat([]byte{0xAB}, 1<<20)},
		{name: "wrong aad", plaintext: []byte("s"), openAAD: "account:web2/svc-stats", wantAuth: true},
		{name: "wrong master key", plaintext: []byte("s"), openWith: other, wantAuth: true},
		{name: "tampered nonce", plaintext: []byte("s"), mutate: flipAt(1), wantAuth: true},
		{name: "tampered ciphertext", plaintext: []byte("secret"), mutate: flipAt(1 + nonceSize), wantAuth: true},
		{name: "tampered tag", plaintext: []byte("s"), mutate: flipAt(-1), wantAuth: true},
		{name: "appended byte", plaintext: []byte("s"), mutate: func(b []byte) []byte { return append(b, 0) }, wantAuth: true},
		{name: "wrong version", plaintext: []byte("s"), mutate: func(b []byte) []byte { b[0] = 2; return b }, wantErr: []string{"format version 2"}},
		{name: "truncated", plaintext: []byte("s"), mutate: func(b []byte) []byte { return b[:sealedMinSize-1] }, wantErr: []string{"shorter than"}},
		{name: "empty input", plaintext: []byte("s"), mutate: func([]byte) []byte { return nil }, wantErr: []string{"empty"}},
		{name: "empty aad on open", plaintext: []byte("s"), openAAD: "-", wantErr: []string{"additional data is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := v.Seal(tt.plaintext, aad)
			if err != nil {
				t.Fatal(err)
			}
			if want := 1 + nonceSize + len(tt.plaintext) + tagSize; len(sealed) != want {
				t.Fatalf("sealed length %d, want %d", len(sealed), want)
			}
			if sealed[0] != formatVersion {
				t.Fatalf("version byte %d, want %d", sealed[0], formatVersion)
			}
			if tt.mutate != nil {
				sealed = tt.mutate(sealed)
			}
			openWith, openAAD := v, aad
			if tt.openWith != nil {
				openWith = tt.openWith
			}
			switch tt.openAAD {
			case "":
			case "-":
				openAAD = ""
			default:
				openAAD = tt.openAAD
			}

			got, err := openWith.Open(sealed, openAAD)
			switch {
			case tt.wantAuth:
				if !errors.Is(err, ErrAuthentication) {
					t.Fatalf("error %v, want ErrAuthentication", err)
				}
				wantErrContains(t, err, "wrong master key or tampered secret", openAAD)
			case tt.wantErr != nil:
				wantErrContains(t, err, tt.wantErr...)
			default:
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.plaintext) {
					t.Fatal("plaintext differs after round trip")
				}
			}
		})
	}
}

// flipAt returns a mutation that flips one bit at index i (negative counts
// from the end).
func flipAt(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		return b
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	v := newTestVault(t)
	a, err := v.Seal([]byte("same"), "x")
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.Seal([]byte("same"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[1:1+nonceSize], b[1:1+nonceSize]) {
		t.Fatal("two seals used the same nonce")
	}
	if _, err := v.Seal([]byte("s"), ""); err == nil {
		t.Fatal("Seal accepted empty additional data")
	}
}

func TestVaultConcurrentUse(t *testing.T) {
	v := newTestVault(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			aad := "account:t/" + string(rune('a'+i))
			for range 50 {
				sealed, err := v.Seal([]byte(aad), aad)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := v.Open(sealed, aad)
				if err != nil || string(got) != aad {
					t.Errorf("open: %q, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNewRejectsWrongKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		_, err := New(make([]byte, n))
		wantErrContains(t, err, "want 32")
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")

	v1, created, err := LoadOrCreateMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("created = false for a new file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %#o, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimSuffix(string(data), "\n")
	if len(text) != 64 {
		t.Fatalf("file holds %d characters before the newline, want 64", len(text))
	}
	if _, err := hex.DecodeString(text); err != nil {
		t.Fatalf("file is not hex: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key (temporary file left behind?)", len(entries))
	}

	sealed, err := v1.Seal([]byte("kept across restarts"), "x")
	if err != nil {
		t.Fatal(err)
	}
	v2, created, err := LoadOrCreateMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Fatal("created = true when reloading")
	}
	if got, err := v2.Open(sealed, "x"); err != nil || string(got) != "kept across restarts" {
		t.Fatalf("reloaded key does not open what the first sealed: %q, %v", got, err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, data) {
		t.Fatal("reload changed the key file")
	}
}

func TestLoadOrCreateMasterKeyMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "master.key")
	_, _, err := LoadOrCreateMasterKey(path)
	wantErrContains(t, err, "master key file", "does not exist")
}

func TestLoadOrCreateMasterKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 8
	vaults := make([]*Vault, n)
	createdCount := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, created, err := LoadOrCreateMasterKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			vaults[i] = v
			if created {
				createdCount++
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if createdCount != 1 {
		t.Fatalf("%d callers report creating the key, want 1", createdCount)
	}
	sealed, err := vaults[0].Seal([]byte("s"), "x")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vaults {
		if _, err := v.Open(sealed, "x"); err != nil {
			t.Fatalf("vault %d holds a different key: %v", i, err)
		}
	}
}

func TestLoadMasterKeyBadFiles(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		dir     bool
		wantErr []string // the file name is always expected as well
	}{
		{name: "world readable", content: good + "\n", mode: 0o644, wantErr: []string{"mode 0644", "chmod 600"}},
		{name: "group readable", content: good + "\n", mode: 0o640, wantErr: []string{"group or others", "chmod 600"}},
		{name: "group writable", content: good + "\n", mode: 0o620, wantErr: []string{"chmod 600"}},
		{name: "empty", content: "", mode: 0o600, wantErr: []string{"empty"}},
		{name: "short", content: good[:63] + "\n", mode: 0o600, wantErr: []string{"63 characters", "want exactly 64 hex characters"}},
		{name: "long", content: good + "00", mode: 0o600, wantErr: []string{"66 characters"}},
		{name: "two newlines", content: good + "\n\n", mode: 0o600, wantErr: []string{"65 characters"}},
		{name: "non-hex", content: good[:10] + "g" + good[11:], mode: 0o600, wantErr: []string{"character 11 is not a hex digit"}},
		{name: "spaces", content: " " + good[1:], mode: 0o600, wantErr: []string{"character 1 is not a hex digit"}},
		{name: "too large", content: strings.Repeat("0", maxSecretFileSize+1), mode: 0o600, wantErr: []string{"larger than"}},
		{name: "directory", dir: true, wantErr: []string{"not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && tt.mode&0o077 != 0 {
				t.Skip("Windows does not express access in mode bits")
			}
			path := filepath.Join(t.TempDir(), "master.key")
			if tt.dir {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
				// Chmod after writing: WriteFile's mode is filtered by umask.
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := LoadOrCreateMasterKey(path)
			wantErrContains(t, err, append([]string{"master key file", path}, tt.wantErr...)...)
			if strings.Contains(err.Error(), good[:16]) {
				t.Fatal("error echoes the key file's contents")
			}
		})
	}
}

func TestLoadMasterKeyAcceptedForms(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	for _, content := range []string{good, good + "\n", good + "\r\n", strings.ToUpper(good)} {
		path := filepath.Join(t.TempDir(), "master.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, created, err := LoadOrCreateMasterKey(path); err != nil || created {
			t.Fatalf("content %q: created=%v err=%v", content, created, err)
		}
	}
}

// Test keys. RSA generation is slow, so each size is made once.
var (
	rsa3072 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(3072) })
	rsa1024 = sync.OnceValue(func() *rsa.PrivateKey { return mustRSA(1024) })
)

func mustRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustEd25519(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// encodeKey writes key in one of the PEM forms ImportAccountKey accepts.
func encodeKey(t testing.TB, key any, form string) []byte {
	t.Helper()
	var block *pem.Block
	var err error
	switch form {
	case "openssh":
		block, err = ssh.MarshalPrivateKey(key, "test")
	case "pkcs1":
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))}
	case "pkcs8":
		var der []byte
		der, err = x509.MarshalPKCS8PrivateKey(key)
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case "ec":
		var der []byte
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	default:
		t.Fatalf("unknown form %q", form)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func TestImportAccountKey(t *testing.T) {
	v := newTestVault(t)
	const aad = "account:web1/svc-stats"
	tests := []struct {
		name     string
		key      crypto.Signer
		form     string
		wantType string
	}{
		{"ed25519 openssh", mustEd25519(t), "openssh", ssh.KeyAlgoED25519},
		{"ed25519 pkcs8", mustEd25519(t), "pkcs8", ssh.KeyAlgoED25519},
		{"rsa-3072 pkcs1", rsa3072(), "pkcs1", ssh.KeyAlgoRSA},
		{"rsa-3072 pkcs8", rsa3072(), "pkcs8", ssh.KeyAlgoRSA},
		{"rsa-3072 openssh", rsa3072(), "openssh", ssh.KeyAlgoRSA},
		{"ecdsa p256 ec", mustECDSA(t, elliptic.P256()), "ec", ssh.KeyAlgoECDSA256},
		{"ecdsa p384 pkcs8", mustECDSA(t, elliptic.P384()), "pkcs8", ssh.KeyAlgoECDSA384},
		{"ecdsa p521 openssh", mustECDSA(t, elliptic.P521()), "openssh", ssh.KeyAlgoECDSA521},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPub, err := ssh.NewPublicKey(tt.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			sealed, pub, err := v.ImportAccountKey(encodeKey(t, tt.key, tt.form), aad)
			if err != nil {
				t.Fatal(err)
			}
			if pub.Type() != tt.wantType || !bytes.Equal(pub.Marshal(), wantPub.Marshal()) {
				t.Fatalf("public key %s, want the imported key's %s", pub.Type(), wantPub.Type())
			}
			if bytes.Contains(sealed, []byte("PRIVATE KEY")) {
				t.Fatal("sealed blob holds the PEM in clear")
			}
			opened, err := v.Open(sealed, aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(opened, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
				t.Fatal("sealed key is not stored as OpenSSH PEM")
			}

			signer, err := v.Signer(sealed, aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
				t.Fatal("signer's public key differs from the returned one")
			}
			checkSigner(t, signer)
			if _, err := v.Signer(sealed, "account:web2/svc-stats"); !errors.Is(err, ErrAuthentication) {
				t.Fatalf("Signer with another record's aad: %v, want ErrAuthentication", err)
			}
		})
	}
}

// checkSigner signs with every algorithm the signer offers and verifies the
// result; RSA signers must not offer SHA-1.
func checkSigner(t *testing.T, signer ssh.Signer) {
	t.Helper()
	algos := []string{signer.PublicKey().Type()}
	if ms, ok := signer.(ssh.MultiAlgorithmSigner); ok {
		algos = ms.Algorithms()
	}
	if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		if !slices.Equal(algos, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}) {
			t.Fatalf("RSA signer offers %v, want only rsa-sha2-512 and rsa-sha2-256", algos)
		}
		if _, err := signer.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, []byte("m"), ssh.KeyAlgoRSA); err == nil {
			t.Fatal("RSA signer made an ssh-rsa (SHA-1) signature")
		}
	}
	for _, algo := range algos {
		msg := []byte("data to sign")
		sig, err := signer.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, msg, algo)
		if err != nil {
			t.Fatalf("sign with %s: %v", algo, err)
		}
		if err := signer.PublicKey().Verify(msg, sig); err != nil {
			t.Fatalf("verify %s signature: %v", algo, err)
		}
	}
}

func TestImportAccountKeyRejects(t *testing.T) {
	v := newTestVault(t)

	encryptedOpenSSH := func() []byte {
		block, err := ssh.MarshalPrivateKeyWithPassphrase(mustEd25519(t), "", []byte("hunter2"))
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(block)
	}
	// Legacy OpenSSL encryption marks the PEM headers.
	encryptedLegacy := func() []byte {
		block := &pem.Block{
			Type:    "RSA PRIVATE KEY",
			Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00000000000000000000000000000000"},
			Bytes:   []byte("ciphertext"),
		}
		return pem.EncodeToMemory(block)
	}
	x25519 := func() []byte {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return encodeKey(t, k, "pkcs8")
	}
	// A seed paired with another key's public half.
	mismatched := func() []byte {
		a, b := mustEd25519(t), mustEd25519(t)
		bad := append(slices.Clone(a.Seed()), b[ed25519.SeedSize:]...)
		return encodeKey(t, ed25519.PrivateKey(bad), "openssh")
	}
	pubLine := func() []byte {
		pub, err := ssh.NewPublicKey(mustEd25519(t).Public())
		if err != nil {
			t.Fatal(err)
		}
		return ssh.MarshalAuthorizedKey(pub)
	}

	tests := []struct {
		name    string
		input   []byte
		wantErr []string
	}{
		{"rsa-1024 pkcs1", encodeKey(t, rsa1024(), "pkcs1"), []string{"1024 bits", "at least 2048"}},
		{"rsa-1024 openssh", encodeKey(t, rsa1024(), "openssh"), []string{"1024 bits"}},
		{"encrypted openssh", encryptedOpenSSH(), []string{"passphrase"}},
		{"encrypted legacy pem", encryptedLegacy(), []string{"passphrase"}},
		{"encrypted pkcs8", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), []string{"passphrase"}},
		{"dsa", pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: []byte{1}}), []string{"DSA keys are not accepted"}},
		{"ecdsa p224", encodeKey(t, mustECDSA(t, elliptic.P224()), "ec"), []string{"P-224"}},
		{"x25519", x25519(), []string{"unsupported private key type"}},
		{"mismatched ed25519 halves", mismatched(), []string{"does not match"}},
		{"public key line", pubLine(), []string{"this is a public key"}},
		{"public key pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), []string{"this is a public key"}},
		{"garbage", []byte("not a key"), []string{"no PEM-encoded private key"}},
		{"empty", nil, []string{"no PEM-encoded private key"}},
		{"corrupt body", pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1\x00junk")}), []string{"parse private key"}},
		{"oversized", bytes.Repeat([]byte("A"), maxSecretFileSize+1), []string{"larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, pub, err := v.ImportAccountKey(tt.input, "account:web1/x")
			wantErrContains(t, err, append([]string{"import account key"}, tt.wantErr...)...)
			if sealed != nil || pub != nil {
				t.Fatal("returned a key along with the error")
			}
		})
	}
}

func TestGenerateAccountKey(t *testing.T) {
	v := newTestVault(t)
	const aad = "account:web1/deploy"
	sealed, pub, err := v.GenerateAccountKey(aad)
	if err != nil {
		t.Fatal(err)
	}
	if pub.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s, want ed25519", pub.Type())
	}
	signer, err := v.Signer(sealed, aad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
		t.Fatal("signer's public key differs from the returned one")
	}
	checkSigner(t, signer)

	sealed2, pub2, err := v.GenerateAccountKey(aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(pub.Marshal(), pub2.Marshal()) || bytes.Equal(sealed, sealed2) {
		t.Fatal("two generated keys are equal")
	}
	if _, err := newTestVault(t).Signer(sealed, aad); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Signer under another master key: %v, want ErrAuthentication", err)
	}
}

func TestLoadOrCreateHostKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "host_key")
	s1, created, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created || s1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("created=%v type=%s, want a new ed25519 key", created, s1.PublicKey().Type())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %#o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if _, err := ssh.ParsePrivateKey(data); err != nil {
		t.Fatalf("host key is not plain OpenSSH PEM: %v", err)
	}

	s2, created, err := LoadOrCreateHostKey(path)
	if err != nil || created {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}
	if !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Fatal("reloaded host key differs")
	}

	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err = LoadOrCreateHostKey(path)
		wantErrContains(t, err, "host key file", path, "chmod 600")
	}

	rsaPath := filepath.Join(dir, "rsa_host_key")
	if err := os.WriteFile(rsaPath, encodeKey(t, rsa3072(), "pkcs1"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, _, err := LoadOrCreateHostKey(rsaPath)
	if err != nil {
		t.Fatal(err)
	}
	checkSigner(t, rs)

	badPath := filepath.Join(dir, "bad_host_key")
	if err := os.WriteFile(badPath, encodeKey(t, rsa1024(), "pkcs1"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadOrCreateHostKey(badPath)
	wantErrContains(t, err, "host key file", badPath, "1024 bits")
}

func TestLoadOrCreateCA(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "user_ca")
	v := newTestVault(t)
	ca1, err := v.LoadOrCreateCA(path)
	if err != nil {
		t.Fatal(err)
	}
	if ca1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("CA key type %s, want ed25519", ca1.PublicKey().Type())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %#o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte("OPENSSH PRIVATE KEY")) {
		t.Fatal("CA file holds the key in clear")
	}
	if _, err := ssh.ParsePrivateKey(data); err == nil {
		t.Fatal("CA file parses as a plain private key")
	}

	ca2, err := v.LoadOrCreateCA(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1.PublicKey().Marshal(), ca2.PublicKey().Marshal()) {
		t.Fatal("reloaded CA differs")
	}

	_, err = newTestVault(t).LoadOrCreateCA(path)
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("load under another master key: %v, want ErrAuthentication", err)
	}
	wantErrContains(t, err, "user CA key file", path)

	plain := filepath.Join(dir, "plain_ca")
	if err := os.WriteFile(plain, encodeKey(t, mustEd25519(t), "openssh"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = v.LoadOrCreateCA(plain)
	wantErrContains(t, err, "not a sealed CA key")
}

func newTestCA(t *testing.T, now time.Time) *CA {
	t.Helper()
	ca, err := newTestVault(t).LoadOrCreateCA(filepath.Join(t.TempDir(), "user_ca"))
	if err != nil {
		t.Fatal(err)
	}
	ca.now = func() time.Time { return now }
	return ca
}

func TestSignUserCert(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	ca := newTestCA(t, now)
	userKey := mustEd25519(t)
	userPub, err := ssh.NewPublicKey(userKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 5 * time.Minute
	cert, err := ca.SignUserCert(userPub, "deploy", "portcullis:alice:s-123", ttl, UserCertPermits{PTY: true, PortForwarding: true})
	if err != nil {
		t.Fatal(err)
	}

	if cert.CertType != ssh.UserCert {
		t.Errorf("cert type %d, want user", cert.CertType)
	}
	if !slices.Equal(cert.ValidPrincipals, []string{"deploy"}) {
		t.Errorf("principals %v, want [deploy]", cert.ValidPrincipals)
	}
	if cert.KeyId != "portcullis:alice:s-123" {
		t.Errorf("key ID %q", cert.KeyId)
	}
	if want := uint64(now.Add(-time.Minute).Unix()); cert.ValidAfter != want {
		t.Errorf("valid after %d, want %d (now - 1m)", cert.ValidAfter, want)
	}
	if want := uint64(now.Add(ttl).Unix()); cert.ValidBefore != want {
		t.Errorf("valid before %d, want %d (now + ttl)", cert.ValidBefore, want)
	}
	wantExt := map[string]string{"permit-pty": "", "permit-port-forwarding": ""}
	if len(cert.Extensions) != len(wantExt) {
		t.Errorf("extensions %v, want exactly %v", cert.Extensions, wantExt)
	}
	for k := range wantExt {
		if _, ok := cert.Extensions[k]; !ok {
			t.Errorf("extension %s missing", k)
		}
	}
	for _, k := range []string{"permit-agent-forwarding", "permit-X11-forwarding", "permit-user-rc"} {
		if _, ok := cert.Extensions[k]; ok {
			t.Errorf("extension %s must not be granted", k)
		}
	}
	if len(cert.CriticalOptions) != 0 {
		t.Errorf("critical options %v, want none", cert.CriticalOptions)
	}
	if !bytes.Equal(cert.Key.Marshal(), userPub.Marshal()) {
		t.Error("certificate is for another key")
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), ca.PublicKey().Marshal()) {
		t.Error("certificate is signed by another key")
	}
	other, err := ca.SignUserCert(userPub, "deploy", "k", ttl, UserCertPermits{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Serial == cert.Serial {
		t.Error("two certificates share a serial")
	}

	checkAt := func(at time.Time) *ssh.CertChecker {
		return &ssh.CertChecker{
			IsUserAuthority: func(auth ssh.PublicKey) bool {
				return bytes.Equal(auth.Marshal(), ca.PublicKey().Marshal())
			},
			Clock: func() time.Time { return at },
		}
	}
	checks := []struct {
		name      string
		principal string
		at        time.Time
		ok        bool
	}{
		{"principal now", "deploy", now, true},
		{"within skew allowance", "deploy", now.Add(-59 * time.Second), true},
		{"just before expiry", "deploy", now.Add(ttl - time.Second), true},
		{"other principal", "root", now, false},
		{"empty principal", "", now, false},
		{"expired", "deploy", now.Add(ttl + time.Second), false},
		{"not yet valid", "deploy", now.Add(-2 * time.Minute), false},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			err := checkAt(c.at).CheckCert(c.principal, cert)
			if c.ok && err != nil {
				t.Fatalf("CheckCert: %v", err)
			}
			if !c.ok && err == nil {
				t.Fatal("CheckCert accepted the certificate")
			}
		})
	}

}

// TestUserCertPermits: a certificate carries the permit-* extensions of the
// granted actions and nothing else; agent, X11 and user rc never.
func TestUserCertPermits(t *testing.T) {
	ca := newTestCA(t, time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC))
	pub, err := ssh.NewPublicKey(mustEd25519(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		permits UserCertPermits
		want    []string
	}{
		{UserCertPermits{}, nil},
		{UserCertPermits{PTY: true}, []string{"permit-pty"}},
		{UserCertPermits{PortForwarding: true}, []string{"permit-port-forwarding"}},
		{UserCertPermits{PTY: true, PortForwarding: true}, []string{"permit-port-forwarding", "permit-pty"}},
	}
	for _, tt := range tests {
		cert, err := ca.SignUserCert(pub, "u", "k", time.Minute, tt.permits)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(maps.Keys(cert.Extensions))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%+v: extensions %v, want %v", tt.permits, got, tt.want)
		}
	}
}

func TestSignUserCertRejects(t *testing.T) {
	ca := newTestCA(t, time.Now())
	pub, err := ssh.NewPublicKey(mustEd25519(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignUserCert(pub, "u", "k", time.Minute, UserCertPermits{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		pub       ssh.PublicKey
		principal string
		keyID     string
		ttl       time.Duration
		wantErr   string
	}{
		{"nil key", nil, "u", "k", time.Minute, "no public key"},
		{"empty principal", pub, "", "k", time.Minute, "empty principal"},
		{"empty key ID", pub, "u", "", time.Minute, "empty key ID"},
		{"zero ttl", pub, "u", "k", 0, "not positive"},
		{"negative ttl", pub, "u", "k", -time.Minute, "not positive"},
		{"certificate as key", cert, "u", "k", time.Minute, "itself a certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.SignUserCert(tt.pub, tt.principal, tt.keyID, tt.ttl, UserCertPermits{})
			wantErrContains(t, err, tt.wantErr)
		})
	}
}

// TestEphemeralCertSignerLogsIn runs a real SSH handshake against a server
// that trusts only the CA, as a target with TrustedUserCAKeys does.
func TestEphemeralCertSignerLogsIn(t *testing.T) {
	ca := newTestCA(t, time.Now())
	host, _, err := LoadOrCreateHostKey(filepath.Join(t.TempDir(), "host_key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ca.NewEphemeralCertSigner("deploy", "portcullis:alice:s-1", time.Minute, UserCertPermits{PTY: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := signer.PublicKey().(*ssh.Certificate)
	if !ok {
		t.Fatalf("signer's public key is %T, want a certificate", signer.PublicKey())
	}
	if !slices.Equal(cert.ValidPrincipals, []string{"deploy"}) || cert.KeyId != "portcullis:alice:s-1" {
		t.Fatalf("certificate principals %v key ID %q", cert.ValidPrincipals, cert.KeyId)
	}
	again, err := ca.NewEphemeralCertSigner("deploy", "k", time.Minute, UserCertPermits{PTY: true})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again.PublicKey().(*ssh.Certificate).Key.Marshal(), cert.Key.Marshal()) {
		t.Fatal("two ephemeral signers share a key")
	}

	otherCA := newTestCA(t, time.Now())
	for _, tc := range []struct {
		name    string
		user    string
		trusted ssh.PublicKey
		ok      bool
	}{
		{"certified principal", "deploy", ca.PublicKey(), true},
		{"other principal", "root", ca.PublicKey(), false},
		{"untrusted CA", "deploy", otherCA.PublicKey(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(t, host, tc.trusted, tc.user, signer)
			if tc.ok && err != nil {
				t.Fatalf("login as %s: %v", tc.user, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("login as %s succeeded", tc.user)
			}
		})
	}
}

func handshake(t *testing.T, host ssh.Signer, caPub ssh.PublicKey, user string, auth ssh.Signer) error {
	t.Helper()
	checker := &ssh.CertChecker{
		IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), caPub.Marshal()) },
	}
	serverConf := &ssh.ServerConfig{PublicKeyCallback: checker.Authenticate}
	serverConf.AddHostKey(host)
	// A TCP pair rather than net.Pipe: both SSH sides write their version
	// line before reading, which deadlocks on an unbuffered pipe.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		serverConn, err := ln.Accept()
		if err != nil {
			return
		}
		defer serverConn.Close()
		if conn, _, _, err := ssh.NewServerConn(serverConn, serverConf); err == nil {
			conn.Close()
		}
	}()
	clientConn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer clientConn.Close()
	conn, _, _, err := ssh.NewClientConn(clientConn, "target:22", &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(auth)},
		HostKeyCallback: ssh.FixedHostKey(host.PublicKey()),
	})
	if err == nil {
		conn.Close()
	}
	clientConn.Close()
	<-done
	return err
}

func FuzzOpen(f *testing.F) {
	v := newTestVault(f)
	const aad = "account:web1/svc-stats"
	sealed, err := v.Seal([]byte("seed secret"), aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{})
	f.Add([]byte{formatVersion})
	f.Add([]byte{0})
	f.Add([]byte{2, 0, 0})
	f.Add(sealed[:sealedMinSize])
	f.Add(bytes.Repeat([]byte{formatVersion}, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := v.Open(data, aad)
		if err == nil && !bytes.Equal(data, sealed) {
			t.Fatalf("opened %d bytes that were never sealed: %q", len(data), got)
		}
	})
}

func FuzzImportAccountKey(f *testing.F) {
	v := newTestVault(f)
	ed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	f.Add(encodeKey(f, ed, "openssh"))
	f.Add(encodeKey(f, ed, "pkcs8"))
	f.Add(encodeKey(f, rsa3072(), "pkcs1"))
	f.Add(encodeKey(f, rsa3072(), "openssh"))
	ec := mustECDSA(f, elliptic.P256())
	f.Add(encodeKey(f, ec, "ec"))
	f.Add(encodeKey(f, ec, "openssh"))
	f.Add(encodeKey(f, rsa1024(), "pkcs1"))
	enc, err := ssh.MarshalPrivateKeyWithPassphrase(ed, "", []byte("pw"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(enc))
	f.Add([]byte("-----BEGIN DSA PRIVATE KEY-----\n-----END DSA PRIVATE KEY-----\n"))
	f.Add([]byte("ssh-ed25519 AAAA"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sealed, pub, err := v.ImportAccountKey(data, "account:fuzz/x")
		if err != nil {
			return
		}
		// Whatever was accepted must be usable and match its public key.
		signer, err := v.Signer(sealed, "account:fuzz/x")
		if err != nil {
			t.Fatalf("imported key does not open as a signer: %v", err)
		}
		if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
			t.Fatal("signer's public key differs from the returned one")
		}
	})
}
