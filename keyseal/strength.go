package keyseal

import (
	"fmt"
	"math"
	"strings"
	"unicode"
)

// MinPassphraseLen is the length below which a passphrase draws a warning.
const MinPassphraseLen = 12

// minPassphraseBits is the estimated entropy below which a passphrase draws
// a warning: a guesser with the file and a GPU farm needs well over 2^50
// Argon2id evaluations.
const minPassphraseBits = 50

// common are fragments that make a passphrase easy to guess whatever its
// length.
var common = []string{"password", "passphrase", "passwort", "123456", "qwerty", "letmein", "changeme", "roundtable", "admin"}

// Weakness says why passphrase looks easy to guess, or "" when it does not.
// It is a warning, never a refusal: the operator may know better (a long
// passphrase from a password manager in a character set this does not
// weigh). The estimate counts, per character, log2 of the size of its
// character class, but only one bit for a character that repeats the one
// before or continues a run (abc, 123).
func Weakness(passphrase []byte) string {
	s := string(passphrase)
	runes := []rune(s)
	if len(runes) < MinPassphraseLen {
		return fmt.Sprintf("the passphrase has %d characters; use at least %d (four or more random words are easy to type and hard to guess)", len(runes), MinPassphraseLen)
	}
	lower := strings.ToLower(s)
	for _, c := range common {
		if strings.Contains(lower, c) {
			return fmt.Sprintf("the passphrase contains %q, among the first things a guesser tries", c)
		}
	}
	if bits := EstimateBits(passphrase); bits < minPassphraseBits {
		return fmt.Sprintf("the passphrase is easy to guess (about %.0f bits; want %d or more): use more, and more varied, characters or words", bits, minPassphraseBits)
	}
	return ""
}

// EstimateBits is Weakness's rough entropy estimate of a passphrase.
func EstimateBits(passphrase []byte) float64 {
	var bits float64
	var prev rune
	for i, r := range []rune(string(passphrase)) {
		switch {
		case i > 0 && (r == prev || r == prev+1 || r == prev-1):
			bits++
		default:
			bits += math.Log2(classSize(r))
		}
		prev = r
	}
	return bits
}

func classSize(r rune) float64 {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		return 26
	case r >= '0' && r <= '9':
		return 10
	case r == ' ':
		return 2 // a word separator adds little
	case r < 128 && unicode.IsPrint(r):
		return 33
	default:
		return 64
	}
}
