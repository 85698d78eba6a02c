// Package storetest is the conformance suite every store.Store backend
// runs, so that the gateway behaves the same on SQLite and PostgreSQL.
//
// It pins down behaviour the store.Store comments leave open, so that
// backends agree on it too:
//   - The store sets CreatedAt and UpdatedAt; a put of an existing record
//     keeps CreatedAt and moves UpdatedAt. Times come back in UTC with
//     nanoseconds intact.
//   - A nil Secret keeps the stored secret; a non-nil empty Secret removes
//     it; a record without a secret reads back with a nil Secret.
//   - Changes in one Apply run in order (a delete then a put of the same name
//     recreates it); an empty Apply changes nothing, not even the revision.
//   - A record with an empty Kind or Name, or a Spec that is not valid JSON,
//     fails the whole Apply.
//   - List orders kind then name by bytes ("B" before "a"), whatever the
//     database's collation.
//   - ListAudit returns events by ascending ID (append order), or by
//     descending ID with Newest; BeforeID and AfterID bound the ID. Since is
//     inclusive, Until exclusive. A Type ending in "." matches by prefix,
//     case-sensitively and with no wildcards. A Limit of zero means 1000.
//     A zero Time on append means now.
//   - Detail goes through JSON: numbers come back as float64 (so integers
//     above 2^53 lose precision), nested objects as map[string]any, arrays
//     as []any, and a nil or empty Detail comes back empty.
//   - ForgetHostKey of an unknown target is store.ErrNotFound.
//   - The audit trail is one hash chain over ListAudit's output: every
//     event's Hash is store.HashEvent(PrevHash, event as listed), every
//     PrevHash the Hash of the event before it, the first event's PrevHash
//     empty. This holds whatever Detail held (the store normalizes it with
//     store.NormalizeDetail before hashing) and under concurrent appends.
//   - Text fields of events, commands, recordings and indexed text go
//     through store.CleanText: invalid UTF-8 and NUL read back as U+FFFD.
//   - DeleteAuditBefore removes a prefix of the trail: events up to the
//     first one, in ID order, at or after the given time. PruneAudit does
//     the same but keeps the newest event, and stores its retention
//     checkpoint in the same transaction (none when it removes nothing).
//   - Audit IDs grow by one: no holes, none handed out twice.
//   - LatestCheckpoint is by EventID, then Seq; the audit key is created
//     once (store.ErrConflict after).
//   - CreateRecording stores the recording as active whatever its State,
//     store.ErrConflict for an ID that exists. FinishRecording takes only
//     the ended and interrupted states, and may be called again.
//     ListRecordings is newest first (ties by ID, descending).
//     InterruptActive returns the recordings it changed, oldest first.
//   - SearchText quotes everything the user typed: no input is a syntax
//     error or an operator. A query with no letter or digit is
//     store.ErrEmptyQuery. Matching folds case; all words must be in one
//     chunk; a "quoted phrase" must appear in order. One hit per
//     recording, its best chunk; snippets mark matches with « and ».
//   - IndexText is all or nothing: a chunk of a recording that does not
//     exist is store.ErrNotFound and nothing of the batch is indexed.
//   - Commands list by ascending ID; ExitStatus is nil until set.
//   - A JIT request leaves a state once (TransitionJITRequest names the
//     state it moves from; the loser gets store.ErrConflict) and its
//     history is kept in order; a webhook link is used once, never after
//     it expires.
//   - A TOTP time step and a recovery code are each accepted once per
//     user, also under concurrent use; enrolling again forgets the old
//     codes and used steps.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis/portcullis/internal/store"
)

// Run runs the suite against the backend that open creates. open must
// return a new, empty store each time it is called (each case runs on its
// own store); Run closes it when the case ends, so open needs to register
// with t.Cleanup only what else it made (a temp database, a server).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"ApplyGetList", testApplyGetList},
		{"ListByteOrder", testListByteOrder},
		{"PutKeepsCreatedAt", testPutKeepsCreatedAt},
		{"SecretKeptWhenNil", testSecretKeptWhenNil},
		{"Delete", testDelete},
		{"ChangesApplyInOrder", testChangesApplyInOrder},
		{"AtomicOnFailure", testAtomicOnFailure},
		{"CreateOnly", testCreateOnly},
		{"NotFound", testNotFound},
		{"Revision", testRevision},
		{"ConcurrentApply", testConcurrentApply},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AuditFilters", testAuditFilters},
		{"AuditPaging", testAuditPaging},
		{"AuditDefaultLimit", testAuditDefaultLimit},
		{"AuditConcurrentAppend", testAuditConcurrentAppend},
		{"AuditDetail", testAuditDetail},
		{"AuditChain", testAuditChain},
		{"AuditChainConcurrent", testAuditChainConcurrent},
		{"DeleteAuditBefore", testDeleteAuditBefore},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"PruneAudit", testPruneAudit},
		{"AuditIDsDense", testAuditIDsDense},
		{"Recordings", testRecordings},
		{"ListRecordings", testListRecordings},
		{"InterruptActive", testInterruptActive},
		{"RecordingIndex", testRecordingIndex},
		{"CheckWritable", testCheckWritable},
		{"DeleteRecording", testDeleteRecording},
		{"Search", testSearch},
		{"SearchWordsInPunctuation", testSearchWordsInPunctuation},
		{"SearchHitAtItsLine", testSearchHitAtItsLine},
		{"SearchQuoting", testSearchQuoting},
		{"SearchRanking", testSearchRanking},
		{"IndexText", testIndexText},
		{"Commands", testCommands},
		{"ListCommands", testListCommands},
		{"AppendCommands", testAppendCommands},
		{"HostKeys", testHostKeys},
		{"HostKeyConcurrentFirstUse", testHostKeyConcurrentFirstUse},
		{"APIKeys", testAPIKeys},
		{"RegistrationKeyUses", testRegistrationKeyUses},
		{"Agents", testAgents},
		{"ListSettings", testListSettings},
		{"Settings", testSettings},
		{"Passwords", testPasswords},
		{"WebSessions", testWebSessions},
		{"MFAEnrollment", testMFAEnrollment},
		{"MFAOneTime", testMFAOneTime},
		{"JITRequests", testJITRequests},
		{"JITLinks", testJITLinks},
		{"SessionReviews", testSessionReviews},
		{"ReviewCampaigns", testReviewCampaigns},
		{"ReportSchedules", testReportSchedules},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			c.run(t, s)
		})
	}
}

// put builds a put change with a JSON spec made from spec.
func put(kind, name string, spec any, secret []byte) store.Change {
	b, err := json.Marshal(spec)
	if err != nil {
		panic(err) // test data: always marshals
	}
	return store.Change{Record: store.Record{Kind: kind, Name: name, Spec: b, Secret: secret}}
}

func del(kind, name string) store.Change {
	return store.Change{Record: store.Record{Kind: kind, Name: name}, Delete: true}
}

func apply(t *testing.T, s store.Store, changes ...store.Change) {
	t.Helper()
	if err := s.Apply(context.Background(), changes); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func get(t *testing.T, s store.Store, kind, name string) store.Record {
	t.Helper()
	rec, err := s.Get(context.Background(), kind, name)
	if err != nil {
		t.Fatalf("Get %s %s: %v", kind, name, err)
	}
	return rec
}

func revision(t *testing.T, s store.Store) int64 {
	t.Helper()
	rev, err := s.Revision(context.Background())
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	return rev
}

// sameJSON reports whether two JSON texts hold the same value, so that a
// backend may normalize whitespace (jsonb would) without failing the suite.
func sameJSON(t *testing.T, got, want json.RawMessage) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored spec %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("test spec %q is not JSON: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func names(recs []store.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Kind+"/"+r.Name)
	}
	return out
}

func checkUTC(t *testing.T, what string, tm time.Time) {
	t.Helper()
	if tm.IsZero() {
		t.Errorf("%s is zero", what)
	}
	if tm.Location() != time.UTC {
		t.Errorf("%s = %v, want UTC", what, tm)
	}
}

func testApplyGetList(t *testing.T, s store.Store) {
	ctx := context.Background()
	before := time.Now()
	apply(t, s,
		put("User", "bob", map[string]any{"email": "bob@example.com"}, nil),
		put("User", "alice", map[string]any{"email": "alice@example.com", "groups": []string{"ops"}}, nil),
		put("Target", "db1", map[string]any{"address": "10.0.0.1:22"}, []byte("sealed\x00key")),
	)
	after := time.Now()

	rec := get(t, s, "User", "alice")
	if rec.Kind != "User" || rec.Name != "alice" {
		t.Errorf("Get User alice returned %s/%s", rec.Kind, rec.Name)
	}
	if !sameJSON(t, rec.Spec, json.RawMessage(`{"email":"alice@example.com","groups":["ops"]}`)) {
		t.Errorf("spec = %s", rec.Spec)
	}
	if rec.Secret != nil {
		t.Errorf("secret = %q, want nil for a record without one", rec.Secret)
	}
	checkUTC(t, "CreatedAt", rec.CreatedAt)
	checkUTC(t, "UpdatedAt", rec.UpdatedAt)
	if !rec.CreatedAt.Equal(rec.UpdatedAt) {
		t.Errorf("new record: CreatedAt %v != UpdatedAt %v", rec.CreatedAt, rec.UpdatedAt)
	}
	if rec.CreatedAt.Before(before.Add(-time.Second)) || rec.CreatedAt.After(after.Add(time.Second)) {
		t.Errorf("CreatedAt %v not within the Apply call (%v .. %v)", rec.CreatedAt, before, after)
	}
	if got := get(t, s, "Target", "db1").Secret; string(got) != "sealed\x00key" {
		t.Errorf("secret = %q, want %q", got, "sealed\x00key")
	}

	users, err := s.List(ctx, "User")
	if err != nil {
		t.Fatalf("List User: %v", err)
	}
	if got, want := names(users), []string{"User/alice", "User/bob"}; !slices.Equal(got, want) {
		t.Errorf("List User = %v, want %v", got, want)
	}
	all, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List all: %v", err)
	}
	if got, want := names(all), []string{"Target/db1", "User/alice", "User/bob"}; !slices.Equal(got, want) {
		t.Errorf("List all = %v, want %v", got, want)
	}
	if string(all[0].Secret) != "sealed\x00key" {
		t.Errorf("List: secret = %q", all[0].Secret)
	}
	none, err := s.List(ctx, "Policy")
	if err != nil || len(none) != 0 {
		t.Errorf("List of an empty kind = %v, %v; want nothing, no error", names(none), err)
	}
}

func testListByteOrder(t *testing.T, s store.Store) {
	apply(t, s,
		put("K", "b", 1, nil), put("K", "a", 1, nil), put("K", "B", 1, nil),
		put("K", "a-b", 1, nil), put("K", "a_b", 1, nil), put("K", "ab", 1, nil),
		put("k", "a", 1, nil),
	)
	all, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []string{"K/B", "K/a", "K/a-b", "K/a_b", "K/ab", "K/b", "k/a"}
	if got := names(all); !slices.Equal(got, want) {
		t.Errorf("List = %v, want byte order %v", got, want)
	}
}

func testPutKeepsCreatedAt(t *testing.T, s store.Store) {
	apply(t, s, put("User", "bob", map[string]int{"v": 1}, nil))
	first := get(t, s, "User", "bob")
	time.Sleep(10 * time.Millisecond) // let the clock move on
	apply(t, s, put("User", "bob", map[string]int{"v": 2}, nil))
	second := get(t, s, "User", "bob")
	if !second.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("CreatedAt changed on put: %v -> %v", first.CreatedAt, second.CreatedAt)
	}
	if !second.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("UpdatedAt did not move on put: %v -> %v", first.UpdatedAt, second.UpdatedAt)
	}
	if !sameJSON(t, second.Spec, json.RawMessage(`{"v":2}`)) {
		t.Errorf("spec = %s, want the new one", second.Spec)
	}
}

func testSecretKeptWhenNil(t *testing.T, s store.Store) {
	// "12345" would turn into a number in a column with numeric affinity;
	// the NUL and high bytes would not survive a text column.
	secrets := [][]byte{[]byte("12345"), {0, 1, 2, 0xff, 0xfe}}
	for i, secret := range secrets {
		name := fmt.Sprint("t", i)
		apply(t, s, put("Target", name, map[string]int{"v": 1}, secret))
		apply(t, s, put("Target", name, map[string]int{"v": 2}, nil))
		rec := get(t, s, "Target", name)
		if !slices.Equal(rec.Secret, secret) {
			t.Errorf("after a put with a nil secret: secret = %q, want kept %q", rec.Secret, secret)
		}
		if !sameJSON(t, rec.Spec, json.RawMessage(`{"v":2}`)) {
			t.Errorf("spec = %s, want the new one", rec.Spec)
		}
	}

	apply(t, s, put("Target", "t0", 3, []byte("new")))
	if got := get(t, s, "Target", "t0").Secret; string(got) != "new" {
		t.Errorf("after a put with a new secret: secret = %q, want %q", got, "new")
	}
	apply(t, s, put("Target", "t0", 4, []byte{}))
	if got := get(t, s, "Target", "t0").Secret; got != nil {
		t.Errorf("after a put with an empty secret: secret = %q, want nil (removed)", got)
	}
	apply(t, s, put("Target", "t0", 5, nil))
	if got := get(t, s, "Target", "t0").Secret; got != nil {
		t.Errorf("removed secret came back: %q", got)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	apply(t, s, put("User", "bob", 1, []byte("s")), put("User", "carol", 1, nil))
	apply(t, s, del("User", "bob"))
	if _, err := s.Get(ctx, "User", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after delete: err = %v, want ErrNotFound", err)
	}
	recs, err := s.List(ctx, "User")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := names(recs); !slices.Equal(got, []string{"User/carol"}) {
		t.Errorf("List after delete = %v", got)
	}
	// A record put again after a delete is new: its secret went with it.
	apply(t, s, put("User", "bob", 2, nil))
	if rec := get(t, s, "User", "bob"); rec.Secret != nil {
		t.Errorf("recreated record has the deleted one's secret %q", rec.Secret)
	}
}

func testChangesApplyInOrder(t *testing.T, s store.Store) {
	apply(t, s, put("User", "bob", map[string]int{"v": 1}, []byte("old")))
	first := get(t, s, "User", "bob")
	time.Sleep(10 * time.Millisecond)
	apply(t, s, del("User", "bob"), put("User", "bob", map[string]int{"v": 2}, nil))
	rec := get(t, s, "User", "bob")
	if !sameJSON(t, rec.Spec, json.RawMessage(`{"v":2}`)) || rec.Secret != nil {
		t.Errorf("delete then put: got spec %s secret %q, want the new record without secret", rec.Spec, rec.Secret)
	}
	if !rec.CreatedAt.After(first.CreatedAt) {
		t.Errorf("delete then put kept the old CreatedAt %v", rec.CreatedAt)
	}

	apply(t, s, put("User", "carol", 1, nil), del("User", "carol"))
	if _, err := s.Get(context.Background(), "User", "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("put then delete: Get err = %v, want ErrNotFound", err)
	}
}

func testAtomicOnFailure(t *testing.T, s store.Store) {
	ctx := context.Background()
	apply(t, s, put("User", "bob", map[string]int{"v": 1}, []byte("s1")))
	rev := revision(t, s)
	bob := get(t, s, "User", "bob")

	bad := []struct {
		name   string
		change store.Change
		is     error // errors.Is target, nil for any error
	}{
		{"delete of a missing record", del("User", "nobody"), store.ErrNotFound},
		{"spec not JSON", store.Change{Record: store.Record{Kind: "User", Name: "x", Spec: json.RawMessage(`{"v":`)}}, nil},
		{"empty spec", store.Change{Record: store.Record{Kind: "User", Name: "x"}}, nil},
		{"empty name", put("User", "", 1, nil), nil},
		{"empty kind", put("", "x", 1, nil), nil},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			err := s.Apply(ctx, []store.Change{
				put("User", "alice", 1, nil),                             // a new record
				put("User", "bob", map[string]int{"v": 2}, []byte("s2")), // an update
				del("User", "bob"),                                       // and a delete
				b.change,
			})
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			if b.is != nil && !errors.Is(err, b.is) {
				t.Errorf("Apply err = %v, want errors.Is %v", err, b.is)
			}
			if _, err := s.Get(ctx, "User", "alice"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("failed batch wrote a new record (Get err = %v)", err)
			}
			got := get(t, s, "User", "bob")
			if !sameJSON(t, got.Spec, bob.Spec) || string(got.Secret) != "s1" || !got.UpdatedAt.Equal(bob.UpdatedAt) {
				t.Errorf("failed batch changed an existing record: %s %q %v", got.Spec, got.Secret, got.UpdatedAt)
			}
			if r := revision(t, s); r != rev {
				t.Errorf("failed batch moved the revision %d -> %d", rev, r)
			}
		})
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	apply(t, s, put("User", "bob", 1, nil))
	_, err := s.Get(ctx, "User", "alice")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "Group", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a name under another kind: err = %v, want ErrNotFound", err)
	}
	if err := s.Apply(ctx, []store.Change{del("User", "alice")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete missing: err = %v, want ErrNotFound", err)
	}
	if _, err := s.HostKey(ctx, "db1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("HostKey missing: err = %v, want ErrNotFound", err)
	}
	if err := s.ForgetHostKey(ctx, "db1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ForgetHostKey missing: err = %v, want ErrNotFound", err)
	}
}

func testRevision(t *testing.T, s store.Store) {
	ctx := context.Background()
	r0 := revision(t, s)
	apply(t, s, put("User", "a", 1, nil))
	if r := revision(t, s); r != r0+1 {
		t.Errorf("after one put: revision %d, want %d", r, r0+1)
	}
	apply(t, s, put("User", "b", 1, nil), put("User", "c", 1, nil), del("User", "a"))
	if r := revision(t, s); r != r0+2 {
		t.Errorf("after a batch of three: revision %d, want %d (one per Apply)", r, r0+2)
	}
	apply(t, s)
	if err := s.Apply(ctx, nil); err != nil {
		t.Fatalf("Apply(nil): %v", err)
	}
	if r := revision(t, s); r != r0+2 {
		t.Errorf("after empty Applies: revision %d, want unchanged %d", r, r0+2)
	}
	apply(t, s, put("User", "b", 2, nil))
	if r := revision(t, s); r != r0+3 {
		t.Errorf("after an update: revision %d, want %d", r, r0+3)
	}
	// Writes outside Apply are not resource changes.
	if _, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordHostKey(ctx, store.HostKey{Target: "t", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if r := revision(t, s); r != r0+3 {
		t.Errorf("after audit and host key writes: revision %d, want unchanged %d", r, r0+3)
	}
}

func testConcurrentApply(t *testing.T, s store.Store) {
	ctx := context.Background()
	r0 := revision(t, s)
	const writers, each = 4, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Apply(ctx, []store.Change{put("User", name, i, []byte(name))}); err != nil {
					errs <- err
					return
				}
				rec, err := s.Get(ctx, "User", name)
				if err != nil {
					errs <- err
					return
				}
				if string(rec.Secret) != name {
					errs <- fmt.Errorf("get %s: secret %q", name, rec.Secret)
				}
				if _, err := s.List(ctx, "User"); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if r := revision(t, s); r != r0+writers*each {
		t.Errorf("revision %d, want %d", r, r0+writers*each)
	}
	recs, err := s.List(ctx, "User")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != writers*each {
		t.Errorf("List: %d records, want %d", len(recs), writers*each)
	}
}

// sameEvent compares everything but the ID and the hashes (which
// testAuditChain checks).
func sameEvent(got, want store.AuditEvent) error {
	if !got.Time.Equal(want.Time) {
		return fmt.Errorf("time %v, want %v", got.Time, want.Time)
	}
	if got.Time.Location() != time.UTC {
		return fmt.Errorf("time %v is not UTC", got.Time)
	}
	g, w := got, want
	g.ID, w.ID, g.Time, w.Time, g.Detail, w.Detail = 0, 0, time.Time{}, time.Time{}, nil, nil
	g.PrevHash, g.Hash, w.PrevHash, w.Hash = "", "", "", ""
	if !reflect.DeepEqual(g, w) {
		return fmt.Errorf("got %+v, want %+v", g, w)
	}
	if len(got.Detail) != 0 || len(want.Detail) != 0 {
		if !reflect.DeepEqual(got.Detail, want.Detail) {
			return fmt.Errorf("detail %#v, want %#v", got.Detail, want.Detail)
		}
	}
	return nil
}

func listAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), f)
	if err != nil {
		t.Fatalf("ListAudit(%+v): %v", f, err)
	}
	return evs
}

func ids(evs []store.AuditEvent) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

func testAuditRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Nanoseconds and a zone other than UTC: both must survive.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	evs := []store.AuditEvent{
		{
			Time: time.Date(2026, 3, 1, 10, 0, 0, 123456789, zone), Type: "login.success", Outcome: "success",
			User: "alice", Source: "192.0.2.7:50122", Message: "alice logged in",
			Detail: map[string]any{"method": "publickey"},
		},
		{
			Time: time.Date(2026, 3, 1, 10, 0, 1, 1, time.UTC), Type: "session.start", Outcome: "success",
			User: "alice", Source: "192.0.2.7:50122", Target: "db1", Account: "postgres",
			SessionID: "s-1", Policy: "dba-prod", Message: "session to postgres@db1",
		},
		{Time: time.Date(2026, 3, 1, 10, 0, 2, 0, time.UTC), Type: "session.deny", Outcome: "deny"},
	}
	var last int64
	for i, ev := range evs {
		ev.ID = 999999 // ignored
		id, err := s.AppendAudit(ctx, ev)
		if err != nil {
			t.Fatalf("AppendAudit %d: %v", i, err)
		}
		if id <= last {
			t.Errorf("AppendAudit %d: id %d not above the previous %d", i, id, last)
		}
		last = id
		evs[i].ID = id
	}
	got := listAudit(t, s, store.AuditFilter{})
	if len(got) != len(evs) {
		t.Fatalf("ListAudit: %d events, want %d", len(got), len(evs))
	}
	for i := range evs {
		if got[i].ID != evs[i].ID {
			t.Errorf("event %d: ID %d, want %d", i, got[i].ID, evs[i].ID)
		}
		if err := sameEvent(got[i], evs[i]); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}

	// A zero Time means now.
	before := time.Now()
	id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "info.now"})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	now := listAudit(t, s, store.AuditFilter{AfterID: id - 1})
	if len(now) != 1 || now[0].Time.Before(before.Add(-time.Second)) || now[0].Time.After(after.Add(time.Second)) {
		t.Errorf("event appended with a zero Time: got %+v, want Time within %v .. %v", now, before, after)
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	// The events' times are not in ID order (event 3 is the earliest), to
	// tell time filters from ID order.
	evs := []store.AuditEvent{
		{Time: at(1), Type: "login.success", User: "alice", Source: "192.0.2.1:1"},
		{Time: at(2), Type: "session.start", User: "alice", Target: "db1", SessionID: "s1"},
		{Time: at(3), Type: "session.end", User: "alice", Target: "db1", SessionID: "s1"},
		{Time: at(0), Type: "login.failure", User: "bob"},
		{Time: at(4), Type: "session.start", User: "bob", Target: "web1", SessionID: "s2"},
		{Time: at(5), Type: "sessionx.start", User: "bob", Target: "web1"},
		{Time: at(6), Type: "Session.start", User: "carol", Target: "db1"},
		{Time: at(7), Type: "a_b.x", User: "carol"},
		{Time: at(8), Type: "axb.x", User: "carol"},
		{Time: at(9), Type: "session", User: "carol"},
	}
	id := make([]int64, len(evs))
	for i, ev := range evs {
		var err error
		if id[i], err = s.AppendAudit(ctx, ev); err != nil {
			t.Fatalf("AppendAudit %d: %v", i, err)
		}
	}
	pick := func(idx ...int) []int64 {
		var out []int64
		for _, i := range idx {
			out = append(out, id[i])
		}
		return out
	}
	cases := []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"none", store.AuditFilter{}, id},
		{"type exact", store.AuditFilter{Type: "session.start"}, pick(1, 4)},
		{"type prefix", store.AuditFilter{Type: "session."}, pick(1, 2, 4)},
		{"type prefix is case-sensitive", store.AuditFilter{Type: "Session."}, pick(6)},
		{"type without dot is exact", store.AuditFilter{Type: "session"}, pick(9)},
		{"type prefix has no wildcards", store.AuditFilter{Type: "a_b."}, pick(7)},
		{"type no match", store.AuditFilter{Type: "nothing."}, nil},
		{"user", store.AuditFilter{User: "bob"}, pick(3, 4, 5)},
		{"target", store.AuditFilter{Target: "db1"}, pick(1, 2, 6)},
		{"session id", store.AuditFilter{SessionID: "s1"}, pick(1, 2)},
		{"since is inclusive", store.AuditFilter{Since: at(7)}, pick(7, 8, 9)},
		{"until is exclusive", store.AuditFilter{Until: at(2)}, pick(0, 3)},
		{"since and until", store.AuditFilter{Since: at(1), Until: at(4)}, pick(0, 1, 2)},
		{"since in another zone", store.AuditFilter{Since: at(8).In(time.FixedZone("X", -7*3600))}, pick(8, 9)},
		{"after id", store.AuditFilter{AfterID: id[6]}, pick(7, 8, 9)},
		{"limit", store.AuditFilter{Limit: 2}, pick(0, 1)},
		{"limit with filter", store.AuditFilter{User: "carol", Limit: 3}, pick(6, 7, 8)},
		{"newest first", store.AuditFilter{Newest: true, Limit: 3}, pick(9, 8, 7)},
		{"newest first with filter", store.AuditFilter{Newest: true, User: "bob"}, pick(5, 4, 3)},
		{"before id, newest first", store.AuditFilter{Newest: true, BeforeID: id[3], Limit: 2}, pick(2, 1)},
		{"before and after", store.AuditFilter{AfterID: id[1], BeforeID: id[4]}, pick(2, 3)},
		{"combined", store.AuditFilter{Type: "session.", User: "alice", Target: "db1", SessionID: "s1", Since: at(3)}, pick(2)},
		{"unknown user", store.AuditFilter{User: "mallory"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := listAudit(t, s, c.f)
			if !slices.Equal(ids(got), c.want) {
				t.Errorf("ListAudit(%+v) ids = %v, want %v", c.f, ids(got), c.want)
			}
		})
	}
}

func testAuditPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []int64
	for i := range 25 {
		id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "session.data", Message: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, id)
	}
	var got []int64
	var sizes []int
	after := int64(0)
	for range 10 { // bounded: a store ignoring AfterID must not loop forever
		page := listAudit(t, s, store.AuditFilter{AfterID: after, Limit: 10})
		sizes = append(sizes, len(page))
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		after = page[len(page)-1].ID
	}
	if !slices.Equal(sizes, []int{10, 10, 5, 0}) {
		t.Errorf("page sizes %v, want [10 10 5 0]", sizes)
	}
	if !slices.Equal(got, all) {
		t.Errorf("paged ids %v, want %v", got, all)
	}
	// Newest first with BeforeID visits every event once, newest to oldest.
	got, sizes = nil, nil
	before := int64(0)
	for range 10 {
		page := listAudit(t, s, store.AuditFilter{Newest: true, BeforeID: before, Limit: 10})
		sizes = append(sizes, len(page))
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		before = page[len(page)-1].ID
	}
	slices.Reverse(got)
	if !slices.Equal(sizes, []int{10, 10, 5, 0}) || !slices.Equal(got, all) {
		t.Errorf("newest-first pages %v of ids %v (reversed), want [10 10 5 0] of %v", sizes, got, all)
	}
}

func testAuditDefaultLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 1005
	for i := range n {
		if _, err := s.AppendAudit(ctx, store.AuditEvent{Type: "session.data", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := listAudit(t, s, store.AuditFilter{})
	if len(got) != 1000 {
		t.Fatalf("ListAudit with Limit 0: %d events, want 1000", len(got))
	}
	if got[0].Message != "0" || got[999].Message != "999" {
		t.Errorf("ListAudit with Limit 0 returned messages %s .. %s, want the oldest 0 .. 999", got[0].Message, got[999].Message)
	}
	if rest := listAudit(t, s, store.AuditFilter{AfterID: got[999].ID}); len(rest) != n-1000 {
		t.Errorf("the rest: %d events, want %d", len(rest), n-1000)
	}
	if big := listAudit(t, s, store.AuditFilter{Limit: 2000}); len(big) != n {
		t.Errorf("Limit 2000: %d events, want %d", len(big), n)
	}
}

func testAuditConcurrentAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	const goroutines, each = 8, 50
	got := make([][]int64, goroutines)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				id, err := s.AppendAudit(ctx, store.AuditEvent{
					Type: "session.data", SessionID: fmt.Sprint("g", g), Message: fmt.Sprint(i),
					Detail: map[string]any{"i": i},
				})
				if err != nil {
					errs[g] = err
					return
				}
				got[g] = append(got[g], id)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	seen := map[int64]bool{}
	for g, list := range got {
		for i, id := range list {
			if seen[id] {
				t.Errorf("id %d handed out twice", id)
			}
			seen[id] = true
			if i > 0 && id <= list[i-1] {
				t.Errorf("goroutine %d: id %d after %d: ids from one writer must grow", g, id, list[i-1])
			}
		}
	}
	all := listAudit(t, s, store.AuditFilter{})
	if len(all) != goroutines*each {
		t.Fatalf("ListAudit: %d events, want %d", len(all), goroutines*each)
	}
	for i, ev := range all {
		if !seen[ev.ID] {
			t.Errorf("listed id %d was never returned by AppendAudit", ev.ID)
		}
		if i > 0 && ev.ID <= all[i-1].ID {
			t.Errorf("ListAudit not in ascending id order at %d: %d after %d", i, ev.ID, all[i-1].ID)
		}
	}
	for g := range goroutines {
		evs := listAudit(t, s, store.AuditFilter{SessionID: fmt.Sprint("g", g)})
		if !slices.Equal(ids(evs), got[g]) {
			t.Errorf("session g%d: ids %v, want %v", g, ids(evs), got[g])
		}
	}
}

func testAuditDetail(t *testing.T, s store.Store) {
	ctx := context.Background()
	cases := []struct {
		name   string
		detail map[string]any
		want   map[string]any // nil: the same as detail
	}{
		{"nil", nil, map[string]any{}},
		{"empty", map[string]any{}, map[string]any{}},
		{"strings and bools", map[string]any{"cmd": "ls -l", "tty": true, "empty": "", "nul": nil}, nil},
		{
			"numbers come back float64",
			map[string]any{"bytes_in": 1024, "exit": int64(-1), "ratio": 0.5, "big": uint64(1) << 53},
			map[string]any{"bytes_in": float64(1024), "exit": float64(-1), "ratio": 0.5, "big": float64(1 << 53)},
		},
		{
			"nested",
			map[string]any{"env": map[string]string{"LANG": "C"}, "args": []string{"-l", "ü"}, "codes": []int{0, 1}},
			map[string]any{"env": map[string]any{"LANG": "C"}, "args": []any{"-l", "ü"}, "codes": []any{float64(0), float64(1)}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := s.AppendAudit(ctx, store.AuditEvent{Type: "session.end", Detail: c.detail})
			if err != nil {
				t.Fatalf("AppendAudit: %v", err)
			}
			evs := listAudit(t, s, store.AuditFilter{AfterID: id - 1, Limit: 1})
			if len(evs) != 1 || evs[0].ID != id {
				t.Fatalf("ListAudit: got ids %v, want [%d]", ids(evs), id)
			}
			want := c.want
			if want == nil {
				want = c.detail
			}
			got := evs[0].Detail
			if len(want) == 0 {
				if len(got) != 0 {
					t.Errorf("Detail = %#v, want empty", got)
				}
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Detail = %#v, want %#v", got, want)
			}
		})
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{Type: "x", Detail: map[string]any{"c": make(chan int)}}); err == nil {
		t.Error("AppendAudit with a Detail JSON cannot encode succeeded, want an error")
	}
}

func testHostKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	const k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	const k2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBWsuK5SQCaNpNeMTV6wJhnMz9F1aXWX1LgUGE6kaVJN"
	seen := time.Date(2026, 4, 2, 3, 4, 5, 6, time.FixedZone("Z1", 3600))

	if _, err := s.HostKey(ctx, "db1:22"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("HostKey before any: err = %v, want ErrNotFound", err)
	}
	if err := s.RecordHostKey(ctx, store.HostKey{Target: "db1:22", Key: k1, FirstSeen: seen}); err != nil {
		t.Fatalf("RecordHostKey: %v", err)
	}
	hk, err := s.HostKey(ctx, "db1:22")
	if err != nil {
		t.Fatalf("HostKey: %v", err)
	}
	if hk.Target != "db1:22" || hk.Key != k1 || !hk.FirstSeen.Equal(seen) || hk.FirstSeen.Location() != time.UTC {
		t.Errorf("HostKey = %+v, want db1:22 %s %v in UTC", hk, k1, seen)
	}

	err = s.RecordHostKey(ctx, store.HostKey{Target: "db1:22", Key: k2, FirstSeen: seen.Add(time.Hour)})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("second RecordHostKey: err = %v, want ErrConflict", err)
	}
	if hk, err := s.HostKey(ctx, "db1:22"); err != nil || hk.Key != k1 || !hk.FirstSeen.Equal(seen) {
		t.Errorf("after a conflict: HostKey = %+v, %v; want the first key kept", hk, err)
	}

	// Another target is independent.
	if err := s.RecordHostKey(ctx, store.HostKey{Target: "db2:22", Key: k2}); err != nil {
		t.Fatalf("RecordHostKey db2 with zero FirstSeen: %v", err)
	}
	if hk, err := s.HostKey(ctx, "db2:22"); err != nil || hk.Key != k2 || hk.FirstSeen.IsZero() {
		t.Errorf("HostKey db2 = %+v, %v; want k2 with FirstSeen set to now", hk, err)
	}

	if err := s.ForgetHostKey(ctx, "db1:22"); err != nil {
		t.Fatalf("ForgetHostKey: %v", err)
	}
	if _, err := s.HostKey(ctx, "db1:22"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("HostKey after forget: err = %v, want ErrNotFound", err)
	}
	if err := s.ForgetHostKey(ctx, "db1:22"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ForgetHostKey twice: err = %v, want ErrNotFound", err)
	}
	if err := s.RecordHostKey(ctx, store.HostKey{Target: "db1:22", Key: k2, FirstSeen: seen}); err != nil {
		t.Errorf("RecordHostKey after forget: %v", err)
	}
	if hk, err := s.HostKey(ctx, "db1:22"); err != nil || hk.Key != k2 {
		t.Errorf("after forget and record: HostKey = %+v, %v; want k2", hk, err)
	}
	if hk, err := s.HostKey(ctx, "db2:22"); err != nil || hk.Key != k2 {
		t.Errorf("forgetting db1 touched db2: %+v, %v", hk, err)
	}
}

func testHostKeyConcurrentFirstUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	const racers = 8
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			errs[i] = s.RecordHostKey(ctx, store.HostKey{Target: "db1:22", Key: fmt.Sprint("ssh-ed25519 KEY", i)})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("racers %d and %d both recorded a first key", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("racer %d: err = %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no racer recorded the key")
	}
	hk, err := s.HostKey(ctx, "db1:22")
	if err != nil || hk.Key != fmt.Sprint("ssh-ed25519 KEY", winner) {
		t.Errorf("HostKey = %+v, %v; want the winner's key", hk, err)
	}
}
