package aggregate

import (
	"fmt"
	"math/bits"
	"strings"
)

// vocab is the closed list of names one enumerated field accepts. Codes are
// indexes into names, so a code's meaning is fixed by the order here: append
// new names, never reorder, because stored records keep codes.
type vocab[T ~uint8] struct {
	field string
	names []string
	fold  map[string]T // lower-cased name and aliases → code
}

func newVocab[T ~uint8](field string, names []string, aliases map[string]string) vocab[T] {
	v := vocab[T]{field: field, names: names, fold: make(map[string]T, len(names)+len(aliases))}
	for i, n := range names {
		v.fold[strings.ToLower(n)] = T(i)
	}
	for alias, name := range aliases {
		code, ok := v.fold[strings.ToLower(name)]
		if !ok {
			panic("aggregate: alias " + alias + " names unknown value " + name) // programming error in a table below
		}
		v.fold[strings.ToLower(alias)] = code
	}
	return v
}

// parse accepts a value name in any letter case (and the documented aliases).
func (v vocab[T]) parse(s string) (T, error) {
	if c, ok := v.fold[strings.ToLower(strings.TrimSpace(s))]; ok {
		return c, nil
	}
	return 0, &FieldError{Field: v.field, Value: s, Allowed: v.names}
}

func (v vocab[T]) name(c T) string {
	if int(c) < len(v.names) {
		return v.names[c]
	}
	return fmt.Sprintf("%s(%d)", v.field, c)
}

func (v vocab[T]) valid(c T) bool { return int(c) < len(v.names) }

// validSet reports whether s holds only codes of this vocabulary.
func (v vocab[T]) validSet(s Set[T]) bool { return uint64(s)>>len(v.names) == 0 }

// parseSet reads a ";"-separated list (the CTDC "Concatenated" convention).
// Duplicates are merged; an empty string is the empty set.
func (v vocab[T]) parseSet(s string) (Set[T], error) {
	var out Set[T]
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		c, err := v.parse(part)
		if err != nil {
			return 0, err
		}
		out = out.With(c)
	}
	return out, nil
}

func (v vocab[T]) formatSet(s Set[T]) string {
	var b strings.Builder
	for _, c := range s.Values() {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(v.name(c))
	}
	return b.String()
}

// Set is a set of codes of one vocabulary, as a bit set: multi-valued fields
// (exploitation forms, means of control, services…) are small closed lists.
type Set[T ~uint8] uint32

// With returns the set with c added.
func (s Set[T]) With(c T) Set[T] { return s | 1<<c }

// Has reports whether c is in the set.
func (s Set[T]) Has(c T) bool { return s&(1<<c) != 0 }

// Len is the number of codes in the set.
func (s Set[T]) Len() int { return bits.OnesCount32(uint32(s)) }

// Values lists the codes in ascending order, which is the deterministic
// order contribution bounding relies on.
func (s Set[T]) Values() []T {
	out := make([]T, 0, s.Len())
	for x := uint32(s); x != 0; x &= x - 1 {
		out = append(out, T(bits.TrailingZeros32(x)))
	}
	return out
}

// FieldError says which field held which value and what would have been
// accepted; importers prefix it with FILE:LINE.
type FieldError struct {
	Field   string
	Value   string
	Allowed []string // nil when the rule is not a closed list
	Reason  string   // used when Allowed is nil
}

func (e *FieldError) Error() string {
	if e.Allowed != nil {
		return fmt.Sprintf("field %q: %q is not one of %s", e.Field, e.Value, strings.Join(e.Allowed, ", "))
	}
	return fmt.Sprintf("field %q: %q %s", e.Field, e.Value, e.Reason)
}
