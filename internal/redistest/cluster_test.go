package redistest

import "testing"

func TestClusterNodesNameTheHealthyPrimaryOfASlot(t *testing.T) {
	// CLUSTER NODES of a survivor, seconds after 127.0.0.1:7000 died.
	text := `a1 127.0.0.1:7000@17000 master,fail - 1 2 1 disconnected
b2 127.0.0.1:7001@17001 master - 0 3 2 connected 5461-10922
c3 127.0.0.1:7002@17002,host-c myself,master - 0 0 3 connected 10923-16383 [16383->-b2]
d4 127.0.0.1:7003@17003 master - 0 4 7 connected 0-5460
e5 127.0.0.1:7004@17004 slave b2 0 5 2 connected
`
	nodes, err := parseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	for slot, want := range map[int]string{0: "127.0.0.1:7003", 5460: "127.0.0.1:7003", 5461: "127.0.0.1:7001", 16383: "127.0.0.1:7002"} {
		if o := ownerOf(nodes, slot); o == nil || o.addr != want {
			t.Errorf("slot %d held by %+v, want %s", slot, o, want)
		}
	}
	if nodes[4].primary != "b2" || !nodes[0].has("fail") {
		t.Errorf("parsed %+v", nodes)
	}
	if _, err := parseClusterNodes("a1 127.0.0.1:7000@17000 master - 0 0 1 connected 1-x"); err == nil {
		t.Error("a bad slot range was accepted")
	}
}
