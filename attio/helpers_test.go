package attio

import "testing"

// mustEvent parses one bare event for the white-box tests of this package
// (dispatch_test.go, a black-box test, has its own).
func mustEvent(t *testing.T, raw string) *Event {
	t.Helper()
	ev, err := ParseEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
