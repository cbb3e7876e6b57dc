//go:build !linux

package cluster

// DropMappedPages is a no-op off Linux (see fsm_mapped_linux.go).
func (f *FSM) DropMappedPages() error { return nil }
