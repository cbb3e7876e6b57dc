package cluster

import "testing"

// pinAs pins f to the consortium of ledger, as serve --genesis would pin a
// joining node before its first snapshot arrives.
func pinAs(tb testing.TB, f, ledger *FSM) {
	tb.Helper()
	id, err := ledger.ConsortiumID()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.PinConsortium(id); err != nil {
		tb.Fatal(err)
	}
}
