package verify

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Report is what a verification checked and found.
type Report struct {
	Server    string `json:"server,omitempty"`
	StateFile string `json:"state_file,omitempty"`
	Bundle    string `json:"bundle,omitempty"`
	// KeySource says where the trusted partner keys came from.
	KeySource string `json:"key_source"`
	// Consortium is the consortium id the checkpoint and every release are
	// bound to: the genesis's, or (without one) what the origin names.
	Consortium string `json:"consortium,omitempty"`
	// Governance counts the governance statements replayed from the
	// genesis (0 without one).
	Governance  int      `json:"governance,omitempty"`
	NewlyPinned []string `json:"newly_pinned,omitempty"` // partners whose key was pinned on this run
	Partners    []string `json:"partners"`               // the set a majority is counted over
	// The verified checkpoint.
	Origin  string   `json:"origin"`
	Size    int64    `json:"size"`
	Root    string   `json:"root"`    // base64
	Signers []string `json:"signers"` // partners whose signatures verified
	// Releases counts releases looked at; Verified those whose signature
	// and inclusion in the checkpointed tree verified; Pending those
	// signed and in the node's tree but newer than the checkpoint; Failed
	// those with a failure listed in Failures.
	Releases  int            `json:"releases"`
	Verified  int            `json:"verified"`
	Pending   int            `json:"pending"`
	Failed    int            `json:"failed"`
	ByPartner map[string]int `json:"by_partner"` // verified releases per partner
	// History is the outcome of the consistency check against the last run.
	History string `json:"history,omitempty"`
	// ExportRows counts export CSV rows that matched their signed release.
	ExportRows int      `json:"export_rows,omitempty"`
	Failures   []string `json:"failures,omitempty"`
}

// Write prints the report for a human. err is the verification's outcome:
// a non-nil err is printed as FAILED and the result line says FAILED, even
// when no individual release failed (a fork, a changed key or a split view
// is fatal for the whole ledger). The result reads OK only when err is nil
// and nothing failed.
func (r Report) Write(w io.Writer, err error) error {
	var b strings.Builder
	if r.Server != "" {
		fmt.Fprintf(&b, "server:      %s\n", r.Server)
	}
	if r.Bundle != "" {
		fmt.Fprintf(&b, "bundle:      %s\n", r.Bundle)
	}
	if r.Consortium != "" {
		fmt.Fprintf(&b, "consortium:  %s\n", r.Consortium)
	}
	if r.KeySource != "" {
		fmt.Fprintf(&b, "keys:        %s\n", r.KeySource)
	}
	if len(r.NewlyPinned) > 0 {
		fmt.Fprintf(&b, "             newly pinned: %s\n", strings.Join(r.NewlyPinned, " "))
	}
	if r.Origin != "" { // a run that failed before a checkpoint verified has none
		fmt.Fprintf(&b, "checkpoint:  %s size %d root %s\n", r.Origin, r.Size, r.Root)
		fmt.Fprintf(&b, "signed by:   %s (%d of %d partners: %s)\n", strings.Join(r.Signers, " "), len(r.Signers), len(r.Partners), strings.Join(r.Partners, " "))
		fmt.Fprintf(&b, "releases:    %d verified, %d pending (newer than the checkpoint), %d failed, of %d\n", r.Verified, r.Pending, r.Failed, r.Releases)
	}
	for _, p := range r.Partners {
		if n := r.ByPartner[p]; n > 0 {
			fmt.Fprintf(&b, "             %s: %d\n", p, n)
		}
	}
	if r.History != "" {
		fmt.Fprintf(&b, "history:     %s\n", r.History)
	}
	if r.ExportRows > 0 {
		fmt.Fprintf(&b, "export:      %d rows match their signed releases\n", r.ExportRows)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "FAILED:      %s\n", f)
	}
	if err != nil && !slices.Contains(r.Failures, err.Error()) {
		fmt.Fprintf(&b, "FAILED:      %s\n", err)
	}
	if err != nil || len(r.Failures) > 0 {
		b.WriteString("result:      FAILED\n")
	} else {
		b.WriteString("result:      OK\n")
	}
	_, werr := io.WriteString(w, b.String())
	return werr
}
