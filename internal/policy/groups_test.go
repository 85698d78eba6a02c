package policy

import (
	"reflect"
	"testing"
)

// TestRequestGroups checks that groups given at request time (from the
// directory) grant like compiled ones, and only for the request that
// carries them.
func TestRequestGroups(t *testing.T) {
	e := mustCompile(t, testInput())
	withGroups := func(r Request, groups ...string) Request { r.Groups = groups; return r }
	tests := []struct {
		name string
		req  Request
		want Decision
	}{
		{name: "no extra groups", req: userReq("carol", "shell", "web1", "deploy"),
			want: Decision{Reason: "access denied: carol is not granted shell on web1"}},
		{name: "directory group grants", req: withGroups(userReq("carol", "shell", "web1", "deploy"), "ops"),
			want: Decision{Allow: true, Policy: "ops-web1"}},
		{name: "unknown directory group", req: withGroups(userReq("carol", "shell", "web1", "deploy"), "nobody-uses-this"),
			want: Decision{Reason: "access denied: carol is not granted shell on web1"}},
		{name: "group also compiled", req: withGroups(userReq("alice", "shell", "web1", ""), "ops"),
			want: Decision{Allow: true, TargetUsers: []string{"alice.smith", "deploy", "root"}}},
		{name: "service account ignores groups", req: Request{Kind: SubjectServiceAccount, Subject: "stats", Action: "shell",
			Target: "web1", TargetUser: "deploy", Source: scripts, Groups: []string{"ops"}},
			want: Decision{Reason: "access denied: stats is not granted shell on web1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Decide(tt.req)
			got.Obligations = Obligations{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}
