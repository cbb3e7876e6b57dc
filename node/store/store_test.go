package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"roundtable/aggregate"
)

// testKDF is the cheapest setting the floor allows, so the tests stay
// fast; production uses DefaultKDFParams.
var testKDF = MinKDFParams()

var pass = []byte("correct horse battery staple")

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	if err := Init(dir, "RS", pass, testKDF); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

func testCase(id string, notes string) *aggregate.Case {
	c := aggregate.NewCase()
	c.CaseID = id
	c.PersonID = "P-" + id
	c.RegisteredOn = aggregate.DateOf(2023, 5, 17)
	c.Status = aggregate.Identified
	c.Sex = aggregate.Female
	c.BirthYear = 2006
	c.Age = 17
	c.Citizenship = "XK"
	c.ExploitedIn = "DE"
	c.Forms = c.Forms.With(aggregate.SexualExploitation).With(aggregate.ForcedBegging)
	c.Control = c.Control.With(aggregate.DebtBondage)
	c.Services = c.Services.With(aggregate.Legal).With(aggregate.Education)
	c.Recruitment = aggregate.JobOffer
	c.RecruiterRelation = aggregate.Friend
	c.ReferralSource = aggregate.MobileTeam
	c.MigrantStatus = aggregate.National
	c.Unaccompanied = true
	c.Notes = notes
	return &c
}

func importCases(t *testing.T, st *Store, batch int, cases ...*aggregate.Case) ImportStats {
	t.Helper()
	imp, err := st.beginImport(context.Background(), batch, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if err := imp.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := imp.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

func allCases(t *testing.T, st *Store) map[string]aggregate.Case {
	t.Helper()
	out := map[string]aggregate.Case{}
	err := st.Cases(context.Background(), func(c *aggregate.Case) error {
		if _, dup := out[c.CaseID]; dup {
			return fmt.Errorf("case %s returned twice", c.CaseID)
		}
		out[c.CaseID] = *c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestInitOpen(t *testing.T) {
	st, dir := newStore(t)
	if st.Partner() != "RS" {
		t.Errorf("partner = %q", st.Partner())
	}
	msg := []byte("release")
	if !ed25519.Verify(st.PublicKey(), msg, ed25519.Sign(st.SigningKey(), msg)) {
		t.Error("signing key does not match public key")
	}
	err := Init(dir, "RS", pass, testKDF)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second init: %v, want refusal", err)
	}
	for _, tc := range []struct {
		partner string
		params  KDFParams
		pass    string
	}{
		{"QQ", testKDF, "x"},
		{"", testKDF, "x"},
		{"RS", KDFParams{Time: 0, MemoryKiB: 64, Threads: 1}, "x"},
		{"RS", KDFParams{Time: 1, MemoryKiB: 1, Threads: 1}, "x"},
		{"RS", KDFParams{Time: 1, MemoryKiB: 8, Threads: 1}, "x"},           // below the floor: t=1, 8 KiB
		{"RS", KDFParams{Time: 1, MemoryKiB: 64 * 1024, Threads: 1}, "x"},   // t=1
		{"RS", KDFParams{Time: 2, MemoryKiB: 19*1024 - 1, Threads: 1}, "x"}, // just under 19 MiB
		{"RS", testKDF, ""},
	} {
		if err := Init(t.TempDir(), tc.partner, []byte(tc.pass), tc.params); err == nil {
			t.Errorf("Init(%q, %+v, %q) succeeded", tc.partner, tc.params, tc.pass)
		}
	}
	if _, err := Open(t.TempDir(), pass); err == nil || !strings.Contains(err.Error(), "roundtable init") {
		t.Errorf("open missing store: %v", err)
	}
}

func TestWrongPassphrase(t *testing.T) {
	st, dir := newStore(t)
	importCases(t, st, 10, testCase("A-1", "n"))
	st.Close()
	path := filepath.Join(dir, FileName)
	before := fileHash(t, path)
	_, err := Open(dir, []byte("wrong"))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("err = %v, want ErrWrongPassphrase", err)
	}
	for _, want := range []string{"wrong passphrase", "ROUNDTABLE_PASSPHRASE", "--passphrase-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if fileHash(t, path) != before {
		t.Error("a failed open changed the file")
	}
	st2, err := Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	st2.Close()
}

func TestInUse(t *testing.T) {
	_, dir := newStore(t)
	_, err := Open(dir, pass)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use by another roundtable process") {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
}

// secrets are distinctive values that must never appear in the file.
var secrets = []string{"ZEBRA-CASE-777", "PURPLE-ELEPHANT", "P-ZEBRA-CASE-777", "PERSON-OKAPI-42", "KV-SECRET-MARMOT"}

func assertNoSecrets(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%q is readable in %s", s, path)
		}
	}
	// A rare citizenship ("TV", Tuvalu) next to the country of
	// exploitation would show up as the pair in a plaintext encoding.
	if bytes.Contains(raw, []byte("TVDE")) || bytes.Contains(raw, []byte("\x02TV\x02")) {
		t.Errorf("citizenship TV readable in %s", path)
	}
}

func TestEncryptedAtRest(t *testing.T) {
	st, dir := newStore(t)
	c := testCase("ZEBRA-CASE-777", "PURPLE-ELEPHANT")
	c.Citizenship = "TV"
	d := testCase("OTHER-1", "plain")
	d.PersonID = "PERSON-OKAPI-42"
	importCases(t, st, 10, c, d)
	if err := st.Put("pending/2024-Q1", []byte("KV-SECRET-MARMOT")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	st.Close()
	assertNoSecrets(t, path)

	if err := Rekey(context.Background(), dir, pass, []byte("new passphrase"), testKDF); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, []byte("new passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	got := allCases(t, st)
	if got["ZEBRA-CASE-777"] != *c {
		t.Errorf("round trip: got %+v\nwant %+v", got["ZEBRA-CASE-777"], *c)
	}
	st.Close()
	assertNoSecrets(t, path)
}

func TestKV(t *testing.T) {
	st, _ := newStore(t)
	if _, err := st.Get("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
	if err := st.Put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put("a", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get("a"); err != nil || string(v) != "2" {
		t.Errorf("get a = %q, %v", v, err)
	}
	if err := st.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get("a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	if err := st.Put("", nil); err == nil {
		t.Error("empty name accepted")
	}
}

func TestImportGenerations(t *testing.T) {
	st, _ := newStore(t)
	var first []*aggregate.Case
	for i := range 10 {
		first = append(first, testCase(fmt.Sprintf("C-%d", i), "v1"))
	}
	// Batch size 3 makes every import span several transactions.
	if s := importCases(t, st, 3, first...); s != (ImportStats{Added: 10}) {
		t.Errorf("first import stats = %+v", s)
	}
	// Update 0–4, add 10–11, and repeat C-10 in another batch: the last wins.
	var second []*aggregate.Case
	for i := range 5 {
		second = append(second, testCase(fmt.Sprintf("C-%d", i), "v2"))
	}
	second = append(second, testCase("C-10", "early"), testCase("C-11", "v2"), testCase("C-12", "v2"), testCase("C-10", "last"))
	if s := importCases(t, st, 3, second...); s != (ImportStats{Added: 3, Updated: 5, Repeated: 1}) {
		t.Errorf("second import stats = %+v", s)
	}
	got := allCases(t, st)
	if n, _ := st.Count(); n != 13 || len(got) != 13 {
		t.Fatalf("count = %d, iterated %d, want 13", n, len(got))
	}
	for id, want := range map[string]string{"C-0": "v2", "C-4": "v2", "C-5": "v1", "C-9": "v1", "C-10": "last", "C-12": "v2"} {
		if got[id].Notes != want {
			t.Errorf("%s notes = %q, want %q", id, got[id].Notes, want)
		}
	}
	// Superseded versions are compacted: one version per case remains.
	if n := rawKeys(t, st); n != 13 {
		t.Errorf("%d versions in the file, want 13", n)
	}
}

func TestImportAbort(t *testing.T) {
	st, _ := newStore(t)
	importCases(t, st, 2, testCase("KEEP", "v1"))
	imp, err := st.beginImport(context.Background(), 2, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.BeginImport(context.Background()); err == nil {
		t.Error("a second concurrent import was allowed")
	}
	for i := range 7 {
		if err := imp.Add(testCase(fmt.Sprintf("X-%d", i), "no")); err != nil {
			t.Fatal(err)
		}
	}
	if err := imp.Add(testCase("KEEP", "overwritten?")); err != nil {
		t.Fatal(err)
	}
	if err := imp.Abort(); err != nil {
		t.Fatal(err)
	}
	got := allCases(t, st)
	if len(got) != 1 || got["KEEP"].Notes != "v1" {
		t.Errorf("after abort: %+v", got)
	}
	if n := rawKeys(t, st); n != 1 {
		t.Errorf("%d versions left in the file after abort, want 1", n)
	}
	if err := imp.Add(testCase("late", "")); err == nil {
		t.Error("Add after Abort accepted")
	}
	// The store accepts a new import after an abort.
	importCases(t, st, 2, testCase("NEXT", ""))
	if n, _ := st.Count(); n != 2 {
		t.Errorf("count = %d, want 2", n)
	}
}

// TestRecoverUncommitted simulates a crash after some batches were written:
// the file is closed without Commit, and Open must discard them.
func TestRecoverUncommitted(t *testing.T) {
	st, dir := newStore(t)
	importCases(t, st, 4, testCase("OLD", "v1"))
	imp, err := st.beginImport(context.Background(), 4, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := imp.Add(testCase(fmt.Sprintf("N-%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	imp.Add(testCase("OLD", "v2"))
	// Commit without its final transaction: the records reach the file.
	if err := imp.flush(); err != nil {
		t.Fatal(err)
	}
	imp.stop()
	if err := imp.insertAll(); err != nil {
		t.Fatal(err)
	}
	if imp.Flushed() == 0 {
		t.Fatal("nothing flushed; the test would prove nothing")
	}
	st.db.Close() // the "crash"
	st, err = Open(dir, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := allCases(t, st)
	if n, _ := st.Count(); n != 1 || len(got) != 1 || got["OLD"].Notes != "v1" {
		t.Errorf("after recovery: count %d, cases %+v", n, got)
	}
	if n := rawKeys(t, st); n != 1 {
		t.Errorf("%d versions in the file after recovery, want 1", n)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.spill")); len(left) != 0 {
		t.Errorf("spill files left: %v", left)
	}
}

func rawKeys(t *testing.T, st *Store) int {
	t.Helper()
	n := 0
	st.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketCases).Stats().KeyN
		return nil
	})
	return n
}

func TestCodecRoundTrip(t *testing.T) {
	for _, c := range []*aggregate.Case{
		testCase("A", ""),
		func() *aggregate.Case {
			c := testCase(strings.Repeat("x", aggregate.MaxIDLen), strings.Repeat("é", aggregate.MaxNotesLen/2))
			c.PersonID = strings.Repeat("y", aggregate.MaxIDLen)
			return c
		}(),
		func() *aggregate.Case { c := aggregate.NewCase(); c.CaseID = "min"; return &c }(),
	} {
		var got aggregate.Case
		if err := decodeCase(encodeCase(nil, c), &got); err != nil {
			t.Fatalf("%s: %v", c.CaseID, err)
		}
		if got != *c {
			t.Errorf("round trip: got %+v want %+v", got, *c)
		}
	}
	enc := encodeCase(nil, testCase("A", "n"))
	for i := range enc {
		var got aggregate.Case
		if decodeCase(enc[:i], &got) == nil {
			t.Errorf("truncated record of %d bytes decoded", i)
		}
	}
}

func FuzzDecodeCase(f *testing.F) {
	f.Add(encodeCase(nil, testCase("A", "n")))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c aggregate.Case
		if decodeCase(b, &c) == nil {
			if err := c.CheckCodes(); err != nil {
				t.Fatal(err)
			}
			again := encodeCase(nil, &c)
			var d aggregate.Case
			if err := decodeCase(again, &d); err != nil || d != c {
				t.Fatalf("re-encode mismatch: %v", err)
			}
		}
	})
}

// TestCodecReadsV1 checks that records written before sources existed
// (codec version 1: no source field) still decode, with no source, and
// that a version 2 record's source is read back.
func TestCodecReadsV1(t *testing.T) {
	c := testCase("A", "n")
	v2 := encodeRecord(nil, c, "")
	if v2[0] != 2 || v2[1] != 0 {
		t.Fatalf("version 2 record starts %x, want 02 00 (empty source)", v2[:2])
	}
	v1 := append([]byte{1}, v2[2:]...)
	var got aggregate.Case
	src, err := decodeRecord(v1, &got)
	if err != nil || src != "" || got != *c {
		t.Errorf("v1 record: source %q, %v, %+v", src, err, got)
	}
	if src, err := decodeRecord(encodeRecord(nil, c, "ctdc"), &got); err != nil || src != "ctdc" || got != *c {
		t.Errorf("v2 record: source %q, %v", src, err)
	}
	if src, err := sourceOf(encodeRecord(nil, c, "crm")); err != nil || src != "crm" {
		t.Errorf("sourceOf: %q, %v", src, err)
	}
}
