package governance

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"sort"
)

// PartnerKey is one period during which a partner's key could sign: from
// the governance statement that added it (Added; 0 for a founder) until the
// one that removed it (Removed; 0 while it is active). A partner removed
// and re-added (always with the same key) has one PartnerKey per period.
type PartnerKey struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	Added     uint64            `json:"added"`
	Removed   uint64            `json:"removed,omitempty"`
}

// State is what Replay derives from a genesis and its governance history.
type State struct {
	Consortium string       // the genesis id
	Set        Set          // the coordinator set in force after the history
	Next       uint64       // the sequence number the next statement must carry
	Partners   []PartnerKey // in the order the periods began
}

// Keys returns every partner's key, active or removed: past releases of a
// removed partner keep verifying with it.
func (s *State) Keys() map[string]ed25519.PublicKey {
	out := make(map[string]ed25519.PublicKey, len(s.Partners))
	for _, p := range s.Partners {
		out[p.ID] = p.PublicKey
	}
	return out
}

// Active lists the ids of the partners active now, sorted.
func (s *State) Active() []string {
	var ids []string
	for _, p := range s.Partners {
		if p.Removed == 0 {
			ids = append(ids, p.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// Replay checks a governance history from its genesis, as an outside
// verifier would, trusting nothing but the genesis: statement i must carry
// sequence number i+1, name the genesis's consortium id, and be signed by
// the threshold of the coordinator set in force at that point (the genesis
// set, or the one the latest rotation installed). It returns the partner
// keys the history establishes. A history with a tampered, missing,
// reordered or under-signed statement, or one that contradicts the ledger's
// rules on partner keys (a partner's key changed, one key for two
// partners), is refused with the first statement that fails.
func Replay(g Genesis, history []Signed) (*State, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("replay: genesis: %w", err)
	}
	id, err := g.ID()
	if err != nil {
		return nil, fmt.Errorf("replay: genesis: %w", err)
	}
	st := &State{Consortium: id, Set: Set{Coordinators: g.Coordinators, Threshold: g.Threshold}, Next: 1}
	for _, p := range g.Partners {
		st.Partners = append(st.Partners, PartnerKey{ID: p.ID, Name: p.Name, PublicKey: p.PublicKey})
	}
	for i, s := range history {
		if _, err := Verify(s, id, st.Next, st.Set); err != nil {
			return nil, fmt.Errorf("replay: statement %d of the history: %w", i+1, err)
		}
		if err := st.apply(s.Statement); err != nil {
			return nil, fmt.Errorf("replay: statement %d: %w", s.Statement.Seq, err)
		}
		st.Next++
	}
	return st, nil
}

// current returns the index of id's latest period, or -1.
func (s *State) current(id string) int {
	for i := len(s.Partners) - 1; i >= 0; i-- {
		if s.Partners[i].ID == id {
			return i
		}
	}
	return -1
}

func (s *State) apply(st Statement) error {
	a := st.Action
	switch a.Type {
	case Rotate:
		s.Set = Set{Coordinators: a.Rotate.Coordinators, Threshold: a.Rotate.Threshold}
	case AddPartner:
		p := *a.Partner
		for _, q := range s.Partners {
			if q.ID != p.ID && bytes.Equal(q.PublicKey, p.PublicKey) {
				return fmt.Errorf("adds partner %s with the key of partner %s", p.ID, q.ID)
			}
		}
		i := s.current(p.ID)
		switch {
		case i < 0:
		case !bytes.Equal(s.Partners[i].PublicKey, p.PublicKey):
			return fmt.Errorf("changes the key of partner %s", p.ID)
		case s.Partners[i].Removed == 0:
			s.Partners[i].Name = p.Name
			return nil
		}
		s.Partners = append(s.Partners, PartnerKey{ID: p.ID, Name: p.Name, PublicKey: p.PublicKey, Added: st.Seq})
	case RemovePartner, RemoveNode:
		if i := s.current(a.ID); i >= 0 && s.Partners[i].Removed == 0 {
			s.Partners[i].Removed = st.Seq
		} else if a.Type == RemovePartner && i < 0 {
			return fmt.Errorf("removes partner %s, which was never added", a.ID)
		}
	}
	return nil
}
