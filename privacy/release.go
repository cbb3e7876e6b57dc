// Package privacy turns a node's exact tables into differentially private,
// signed releases: mechanisms (through google/differential-privacy/go/v3),
// confidence intervals, the accuracy planner, the budget accountant the
// ledger's state machine calls, and the release format and its signatures.
//
// The measurement design — how a release's budget is split between
// indicators and their margins, and each multi-valued breakdown's k — is
// chosen by a workload optimiser (Design, optimiser.go) in the
// matrix-mechanism view, after HDMM (McKenna et al., VLDB 2018) and
// ResidualPlanner (Xiao et al., NeurIPS 2023).
//
// Nothing in this package returns an un-noised number or serialises an
// aggregator's state.
package privacy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"roundtable/aggregate"
)

// Accounting modes of the consortium's budget policy.
const (
	PureDP = "pure" // ε-DP, Laplace noise, sequential composition of ε
	ZCDP   = "zcdp" // ρ-zCDP, Gaussian noise, additive composition of ρ
)

// Mechanism names as they appear in releases.
const (
	Laplace  = "laplace"
	Gaussian = "gaussian"
)

// FormatVersion is the release format version this code writes and reads.
// Version 2 added Consortium (a release signed for one consortium cannot be
// replayed into another) and, under zCDP, states each indicator's ρ (and the
// δ used to calibrate σ with the library) instead of an "epsilon" that was
// its ρ converted alone — a figure that does not compose. The ledger
// refuses version 1.
const FormatVersion = 2

// Micro is the fixed-point unit in which budgets are accounted: 1 ε (or 1 ρ)
// is 1,000,000 Micro. The ledger's state machine adds integers, never
// floats, so every node reaches the same total on every architecture.
const Micro = 1_000_000

// Release is what a partner publishes: noisy cells with their scales and
// intervals for one period. Its canonical JSON encoding (fields in struct
// order, no maps) is what the ID hashes and the signature covers, so every
// node verifies the same bytes.
type Release struct {
	Version int `json:"version"`
	// Consortium is the consortium id (the genesis hash) the release is
	// published in. It is signed content, so a release is worthless in any
	// other consortium, even one whose partners hold the same keys.
	Consortium  string             `json:"consortium"`
	Partner     string             `json:"partner"`
	CatalogHash string             `json:"catalog_hash"`
	Period      aggregate.Period   `json:"period"`
	Reservation string             `json:"reservation"` // ID of the budget reservation this release consumes
	Accounting  string             `json:"accounting"`  // PureDP or ZCDP
	SpendMicro  int64              `json:"spend_micro"` // ε or ρ, in Micro, charged to each quarter of Period
	Indicators  []IndicatorRelease `json:"indicators"`
}

// IndicatorRelease holds one indicator's noisy table.
type IndicatorRelease struct {
	Name      string `json:"name"`
	Mechanism string `json:"mechanism"`
	// Epsilon is the indicator's ε under pure ε-DP; absent under zCDP.
	Epsilon float64 `json:"epsilon,omitempty"`
	// Delta, under zCDP, is the δ handed to the library to find the σ that
	// ρ requires (GaussianDelta). It is a calibration input, not a claim:
	// the guarantee is ρ (docs/privacy.md gives its exact (ε, δ)).
	Delta float64 `json:"delta,omitempty"`
	// Rho is the indicator's ρ under zCDP; absent under pure ε-DP.
	Rho        float64    `json:"rho,omitempty"`
	Dimensions []string   `json:"dimensions"`
	Cells      []Cell     `json:"cells,omitempty"`
	Quantiles  []Quantile `json:"quantiles,omitempty"`
}

// Cell is one noisy count with its uncertainty.
type Cell struct {
	Key    []string `json:"key"`     // one key per dimension, from the catalog's public key set
	Value  int64    `json:"value"`   // noisy count (may be negative; post-processing clamps)
	Scale  float64  `json:"scale"`   // Laplace b or Gaussian σ
	CILow  float64  `json:"ci_low"`  // 95% confidence interval for the true count
	CIHigh float64  `json:"ci_high"` //
}

// Quantile is one noisy quantile (e.g. the median age) with its interval.
type Quantile struct {
	Rank   float64 `json:"rank"` // 0.25, 0.5, 0.75
	Value  float64 `json:"value"`
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
}

// Canonical returns the bytes that the ID hashes and the signature covers.
func (r *Release) Canonical() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode release: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Signed is a release with its ID and its partner's ed25519 signature.
type Signed struct {
	ID        string  `json:"id"` // hex SHA-256 of the canonical release
	Release   Release `json:"release"`
	Signature []byte  `json:"signature"`
}

const releaseContext = "roundtable release v1\n"

// Sign computes the release ID and signs it with the partner's key.
func Sign(r Release, key ed25519.PrivateKey) (Signed, error) {
	body, err := r.Canonical()
	if err != nil {
		return Signed{}, err
	}
	sum := sha256.Sum256(body)
	return Signed{
		ID:        hex.EncodeToString(sum[:]),
		Release:   r,
		Signature: ed25519.Sign(key, append([]byte(releaseContext), body...)),
	}, nil
}

// ErrBadSignature is returned when a release's signature or ID does not
// match its content.
var ErrBadSignature = errors.New("release signature does not verify")

// Verify checks that the ID is the hash of the content and that pub signed it.
func (s *Signed) Verify(pub ed25519.PublicKey) error {
	body, err := s.Release.Canonical()
	if err != nil {
		return err
	}
	return s.VerifyCanonical(pub, body)
}

// VerifyCanonical is Verify for a caller that already holds body, the
// release's canonical encoding (s.Release.Canonical()): the ledger encodes
// each release once and uses the same bytes for the id, the signature check
// and its Merkle leaf. The checks are Verify's, on those bytes; passing
// anything other than the canonical encoding of s.Release makes the result
// meaningless for s.
func (s *Signed) VerifyCanonical(pub ed25519.PublicKey, body []byte) error {
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != s.ID {
		return fmt.Errorf("%w: id %s is not the hash of the release", ErrBadSignature, s.ID)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, append([]byte(releaseContext), body...), s.Signature) {
		return fmt.Errorf("%w: release %s, partner %s", ErrBadSignature, s.ID, s.Release.Partner)
	}
	return nil
}

// Reservation claims budget before any noise is drawn. The publisher picks
// a random ID; the ledger admits the reservation through the accountant,
// and the release that follows names it. A reservation is spent whether or
// not its release is ever published, which is the safe direction.
type Reservation struct {
	ID string `json:"id"`
	// Consortium is the consortium id (the genesis hash) the budget is
	// reserved in; signed, like a release's.
	Consortium  string           `json:"consortium"`
	Partner     string           `json:"partner"`
	CatalogHash string           `json:"catalog_hash"`
	Period      aggregate.Period `json:"period"`
	Accounting  string           `json:"accounting"`
	SpendMicro  int64            `json:"spend_micro"`
	Indicators  []string         `json:"indicators"`
}

// SignedReservation is a reservation with its partner's signature.
type SignedReservation struct {
	Reservation Reservation `json:"reservation"`
	Signature   []byte      `json:"signature"`
}

// reservationContext separates reservation signatures from other uses of a
// partner's key. v2 covers the consortium id: a v1 signature (made before
// reservations named their consortium) never verifies.
const reservationContext = "roundtable reservation v2\n"

func (r *Reservation) canonical() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode reservation: %w", err)
	}
	return b, nil
}

// SignReservation signs a reservation with the partner's key.
func SignReservation(r Reservation, key ed25519.PrivateKey) (SignedReservation, error) {
	body, err := r.canonical()
	if err != nil {
		return SignedReservation{}, err
	}
	return SignedReservation{Reservation: r, Signature: ed25519.Sign(key, append([]byte(reservationContext), body...))}, nil
}

// Verify checks the reservation's signature.
func (s *SignedReservation) Verify(pub ed25519.PublicKey) error {
	body, err := s.Reservation.canonical()
	if err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, append([]byte(reservationContext), body...), s.Signature) {
		return fmt.Errorf("%w: reservation %s, partner %s", ErrBadSignature, s.Reservation.ID, s.Reservation.Partner)
	}
	return nil
}
