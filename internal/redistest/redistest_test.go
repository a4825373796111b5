package redistest

import (
	"errors"
	"testing"
)

// Test packages start servers in parallel, and a port found free can be taken
// before redis-server binds it. Then the new server exits, and the one
// answering on the port is another test's: a cluster test once built its
// cluster out of another test's node ("Node … is not empty"). start must
// notice that the server that answers is not the one it started.
func TestAServerOnATakenPortIsNotMistakenForOurs(t *testing.T) {
	first, err := StartServer(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop()
	second := &Server{port: first.port, dir: t.TempDir()}
	err = second.start()
	second.Stop()
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("starting a second server on %s: %v, want errPortTaken", first.Addr(), err)
	}
	// StartServer itself takes another port then.
	s, err := startOn(t.TempDir(), false, func() (int, error) { return first.port, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.port == first.port {
		t.Fatalf("second server reported on the first one's port %d", s.port)
	}
}
