package driverproto

import "testing"

func TestHelloMACRole(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	base := HelloMACDemote(secret, "dn", "cn", "id", true, false, 500)
	if got := HelloMACRole(secret, "dn", "cn", "id", true, false, 500, ""); got != base {
		t.Error("no role: not HelloMACDemote's value, which daemons before roles check")
	}
	web := HelloMACRole(secret, "dn", "cn", "id", true, false, 500, "web")
	if web == base || web == HelloMACRole(secret, "dn", "cn", "id", true, false, 500, "db") {
		t.Error("the role is not covered by the MAC")
	}
}

func TestValidRoleName(t *testing.T) {
	for _, s := range []string{"a", "web", "Web-2", "r_1", "0", "abcdefghijabcdefghijabcdefghij12"} {
		if !ValidRoleName(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "-a", "_a", "a.b", "a/b", "..", "abcdefghijabcdefghijabcdefghij123", "é"} {
		if ValidRoleName(s) {
			t.Errorf("%q accepted", s)
		}
	}
}
