package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// LDAPTree is a small directory shared by the directory, SSH and console
// tests: two slapd servers, the second reached by a referral from the
// first, as the domain controllers of a forest would be.
//
//	dc=example,dc=test                 (Main)
//	  ou=people: alice, bob, carol      passwords "<name>-pw"; alice has mail and may have sshPublicKey
//	  ou=people, ou=staff: twin         two entries with one login (ambiguous)
//	  ou=groups:
//	    devs     member alice
//	    eng      member cn=devs           (alice through nesting)
//	    all      member cn=eng, cn=partners-team
//	    ops      member bob
//	    loop-a   member alice, cn=loop-b  (a cycle)
//	    loop-b   member cn=loop-a
//	    partners-team  member dave
//	  ou=partners: referral to Partner
//	dc=example,dc=test                 (Partner, only this subtree)
//	  ou=partners
//	    dave   password "dave-pw"
//
// Both servers allow anonymous binds, including a DN with an empty
// password, and share the root DN cn=admin,dc=example,dc=test (password
// "admin"), used as the gateway's service account.
type LDAPTree struct {
	Main, Partner *SLAPD
}

// LDAPSuffix is the LDAPTree's naming context.
const LDAPSuffix = "dc=example,dc=test"

// StartLDAPTree starts the two servers of an LDAPTree.
func StartLDAPTree(t testing.TB) *LDAPTree {
	t.Helper()
	// The partner serves the same naming context but holds only
	// ou=partners, so the two share the root DN the gateway binds as.
	partner := StartSLAPD(t, SLAPDOptions{Suffix: LDAPSuffix, LDIF: strings.Join([]string{
		entry(LDAPSuffix, "objectClass: dcObject", "objectClass: organization", "dc: example", "o: Example"),
		entry("ou=partners,"+LDAPSuffix, "objectClass: organizationalUnit", "ou: partners"),
		person("dave", "ou=partners,"+LDAPSuffix),
	}, "\n")})
	main := StartSLAPD(t, SLAPDOptions{Suffix: LDAPSuffix, LDIF: strings.Join([]string{
		entry(LDAPSuffix, "objectClass: dcObject", "objectClass: organization", "dc: example", "o: Example"),
		entry("ou=people,"+LDAPSuffix, "objectClass: organizationalUnit", "ou: people"),
		entry("ou=staff,"+LDAPSuffix, "objectClass: organizationalUnit", "ou: staff"),
		entry("ou=groups,"+LDAPSuffix, "objectClass: organizationalUnit", "ou: groups"),
		entry("uid=alice,ou=people,"+LDAPSuffix, "objectClass: inetOrgPerson", "objectClass: ldapPublicKey",
			"uid: alice", "cn: Alice", "sn: A", "mail: alice@example.test", "userPassword: alice-pw"),
		person("bob", "ou=people,"+LDAPSuffix),
		person("carol", "ou=people,"+LDAPSuffix),
		person("twin", "ou=people,"+LDAPSuffix),
		person("twin", "ou=staff,"+LDAPSuffix),
		group("devs", UserDN("alice")),
		group("eng", GroupDN("devs")),
		group("all", GroupDN("eng"), GroupDN("partners-team")),
		group("ops", UserDN("bob")),
		group("loop-a", UserDN("alice"), GroupDN("loop-b")),
		group("loop-b", GroupDN("loop-a")),
		group("partners-team", "uid=dave,ou=partners,"+LDAPSuffix),
		entry("ou=partners,"+LDAPSuffix, "objectClass: referral", "objectClass: extensibleObject", "ou: partners",
			fmt.Sprintf("ref: %s/ou=partners,%s", partner.URL, LDAPSuffix)),
	}, "\n")})
	return &LDAPTree{Main: main, Partner: partner}
}

// UserDN is the DN of a user in ou=people of an LDAPTree.
func UserDN(login string) string { return "uid=" + login + ",ou=people," + LDAPSuffix }

// GroupDN is the DN of a group in ou=groups of an LDAPTree.
func GroupDN(name string) string { return "cn=" + name + ",ou=groups," + LDAPSuffix }

func entry(dn string, lines ...string) string {
	return "dn: " + dn + "\n" + strings.Join(lines, "\n") + "\n"
}

func person(login, parent string) string {
	return entry("uid="+login+","+parent, "objectClass: inetOrgPerson", "uid: "+login, "cn: "+login, "sn: "+login,
		"userPassword: "+login+"-pw")
}

func group(name string, members ...string) string {
	lines := []string{"objectClass: groupOfNames", "cn: " + name}
	for _, m := range members {
		lines = append(lines, "member: "+m)
	}
	return entry(GroupDN(name), lines...)
}
