package verify

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"roundtable/node/api"
	"roundtable/privacy"
)

// Bundle runs the online verification (as Run, including the state file)
// and, only if it passed, writes everything needed to repeat it offline to
// bundlePath as JSON: the checkpoint note, every release with its
// inclusion proof, the consistency proofs that tie those proofs to the
// checkpoint, and the partner keys used.
func Bundle(ctx context.Context, opts Options, bundlePath string) (Report, error) {
	rep, _, m, err := run(ctx, opts, true)
	if err != nil {
		return rep, err
	}
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return rep, fmt.Errorf("encode bundle: %w", err)
	}
	if err := writeAtomic(bundlePath, append(b, '\n')); err != nil {
		return rep, fmt.Errorf("bundle: %w", err)
	}
	rep.Bundle = bundlePath
	return rep, nil
}

// OfflineOptions configures the check of a bundle written by Bundle.
type OfflineOptions struct {
	// Bundle is the bundle's path.
	Bundle string
	// Export, if set, is an export CSV (GET /v1/export.csv) whose every
	// row must equal the cell or quantile of the signed release it names.
	Export string
	// Genesis, if set, is the consortium's genesis file: the bundle's
	// governance history is replayed from it, and partner keys come only
	// from that replay.
	Genesis string
	// Consortium, if set, is the consortium id the coordinators published:
	// the genesis (Genesis, or else the one inside the bundle) must hash
	// to it. A bundle's own genesis checked this way is a full trust root.
	Consortium string
	// Keys, if set, are trusted partner keys to check against instead of
	// a genesis (they trust whoever wrote them).
	Keys Keys
}

// Offline verifies a bundle written by Bundle without any network: the
// checkpoint's signatures and majority, every release's consortium,
// signature and inclusion proof. The trust root is, in order: the genesis
// given, the keys given, the genesis inside the bundle (replaying the
// bundle's governance history; pinned only if Consortium is given), or
// else the keys inside the bundle (the report says they are the bundle's
// word).
func Offline(opts OfflineOptions) (Report, error) {
	b, err := os.ReadFile(opts.Bundle)
	if err != nil {
		return Report{}, fmt.Errorf("bundle: %w", err)
	}
	var m material
	if err := json.Unmarshal(b, &m); err != nil {
		return Report{}, fmt.Errorf("bundle %s: %w", opts.Bundle, err)
	}
	if m.Format != bundleFormat {
		return Report{}, fmt.Errorf("bundle %s: format %q, this verifier reads %q (make the bundle again with this version)", opts.Bundle, m.Format, bundleFormat)
	}
	tr, err := offlineTrust(&m, opts)
	if err != nil {
		return Report{Bundle: opts.Bundle, Consortium: tr.consortium}, err
	}
	rep, _, err := check(&m, tr)
	rep.Server, rep.Bundle = m.Server, opts.Bundle
	if err != nil {
		return rep, err
	}
	if opts.Export == "" {
		return rep, nil
	}
	f, err := os.Open(opts.Export)
	if err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	rows, errs := checkExport(f, opts.Export, m.Releases)
	rep.ExportRows = rows
	for _, e := range errs {
		rep.Failures = append(rep.Failures, e.Error())
	}
	return rep, errors.Join(errs...)
}

// offlineTrust picks the trust root for a bundle (see Offline).
func offlineTrust(m *material, opts OfflineOptions) (trust, error) {
	var pg pinnedGenesis
	var err error
	switch {
	case opts.Genesis != "":
		pg, err = loadGenesis(opts.Genesis, opts.Consortium)
	case opts.Keys != nil:
		if opts.Consortium != "" {
			return trust{}, fmt.Errorf("verify: --consortium checks a genesis; with --keys there is none")
		}
		tr := trust{keys: opts.Keys, source: "given by the caller"}
		tr.partners = partnerSet(m.Partners, keyCodes(tr.keys))
		return tr, nil
	case len(m.Genesis) > 0:
		pg, err = parseGenesis(m.Genesis, "inside bundle "+opts.Bundle, opts.Consortium)
	case opts.Consortium != "":
		return trust{}, fmt.Errorf("%w: bundle %s carries no genesis to check against --consortium (make it with --genesis)", ErrNoTrustRoot, opts.Bundle)
	default:
		tr := trust{keys: Keys{}, source: "from the bundle itself (not independently pinned; pass --genesis FILE or your own keys to check against them)"}
		for p, k := range m.Keys {
			tr.keys[p] = k
		}
		tr.partners = partnerSet(m.Partners, keyCodes(tr.keys))
		return tr, nil
	}
	if err != nil {
		return trust{}, err
	}
	hist := api.GovernanceHistory{Consortium: pg.id, Statements: m.Governance}
	if len(m.Governance) > 0 {
		hist.Consortium = m.Governance[0].Statement.Consortium // Replay checks every statement's
	}
	tr, err := genesisTrust(pg, hist, m.Releases, nil, "")
	if err == nil && opts.Genesis == "" && opts.Consortium == "" {
		tr.source += " (the bundle's own genesis, consortium " + pg.id + ": compare that id with the one the coordinators publish, or pass --consortium ID)"
	}
	return tr, err
}

// maxExportErrors caps the per-row errors so a wholly wrong file gives a
// readable answer.
const maxExportErrors = 20

// checkExport checks every row of an export CSV against the signed
// releases and returns the number of rows that matched and the errors,
// each naming the file, line and column.
func checkExport(r io.Reader, name string, rels []bundleRelease) (int, []error) {
	byID := make(map[string]*bundleRelease, len(rels))
	for i := range rels {
		byID[rels[i].Signed.ID] = &rels[i]
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(api.ExportColumns())
	header, err := cr.Read()
	if err != nil {
		return 0, []error{fmt.Errorf("%w: %s: header: %w", ErrExport, name, err)}
	}
	if !slices.Equal(header, api.ExportColumns()) {
		return 0, []error{fmt.Errorf("%w: %s line 1: header is [%s], want [%s]", ErrExport, name, strings.Join(header, ","), strings.Join(api.ExportColumns(), ","))}
	}
	var errs []error
	ok := 0
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrExport, name, err))
			break
		}
		line, _ := cr.FieldPos(0)
		if err := checkRow(row, byID); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s line %d: %w", ErrExport, name, line, err))
			if len(errs) >= maxExportErrors {
				errs = append(errs, fmt.Errorf("%w: %s: stopped after %d bad rows", ErrExport, name, maxExportErrors))
				break
			}
			continue
		}
		ok++
	}
	return ok, errs
}

// export column positions, as api.ExportColumns lists them.
const (
	colPartner = iota
	colPeriod
	colIndicator
	colDimensions
	colKey
	colEstimate
	colCILow
	colCIHigh
	colMechanism
	colScale
	colEpsilon
	colRho
	colReleaseID
	colLeaf
)

// checkRow finds the signed cell (or quantile) a row names and compares
// every column with it. Numbers are compared as parsed values, exactly:
// the export writes floats with the shortest round-tripping form.
func checkRow(row []string, byID map[string]*bundleRelease) error {
	id := row[colReleaseID]
	br, ok := byID[id]
	if !ok {
		return fmt.Errorf("release_id %s is not in the bundle (make the bundle after the export)", id)
	}
	rel := &br.Signed.Release
	want := func(col int, got, signed string) error {
		if got != signed {
			return fmt.Errorf("release %s: %s is %q, the signed release says %q", id, api.ExportColumns()[col], got, signed)
		}
		return nil
	}
	// Text columns are written through api.CSVText (formula neutralisation).
	text := api.CSVText
	if err := errors.Join(want(colPartner, row[colPartner], text(rel.Partner)),
		want(colPeriod, row[colPeriod], text(rel.Period.String())),
		want(colLeaf, row[colLeaf], strconv.FormatInt(br.Leaf, 10))); err != nil {
		return err
	}
	ind := findIndicator(rel, row[colIndicator])
	if ind == nil {
		return fmt.Errorf("release %s (partner %s %s) has no indicator %q", id, rel.Partner, rel.Period, row[colIndicator])
	}
	if err := errors.Join(want(colMechanism, row[colMechanism], text(ind.Mechanism)),
		numEq(row, colEpsilon, ind.Epsilon, id), numEq(row, colRho, ind.Rho, id)); err != nil {
		return err
	}
	if row[colDimensions] == "rank" {
		return checkQuantile(row, ind, id)
	}
	if err := want(colDimensions, row[colDimensions], text(strings.Join(ind.Dimensions, "|"))); err != nil {
		return err
	}
	for _, c := range ind.Cells {
		if text(strings.Join(c.Key, "|")) != row[colKey] {
			continue
		}
		return errors.Join(want(colEstimate, row[colEstimate], strconv.FormatInt(c.Value, 10)),
			numEq(row, colCILow, c.CILow, id), numEq(row, colCIHigh, c.CIHigh, id), numEq(row, colScale, c.Scale, id))
	}
	return fmt.Errorf("release %s indicator %s has no cell with key %q", id, ind.Name, row[colKey])
}

func checkQuantile(row []string, ind *privacy.IndicatorRelease, id string) error {
	rank, err := strconv.ParseFloat(row[colKey], 64)
	if err != nil {
		return fmt.Errorf("release %s: key %q is not a rank", id, row[colKey])
	}
	for _, q := range ind.Quantiles {
		if q.Rank != rank {
			continue
		}
		var scale error
		if row[colScale] != "" {
			scale = fmt.Errorf("release %s: scale is %q, quantile rows have none", id, row[colScale])
		}
		return errors.Join(numEq(row, colEstimate, q.Value, id), numEq(row, colCILow, q.CILow, id), numEq(row, colCIHigh, q.CIHigh, id), scale)
	}
	return fmt.Errorf("release %s indicator %s has no quantile of rank %s", id, ind.Name, row[colKey])
}

func findIndicator(rel *privacy.Release, name string) *privacy.IndicatorRelease {
	for i := range rel.Indicators {
		if api.CSVText(rel.Indicators[i].Name) == name {
			return &rel.Indicators[i]
		}
	}
	return nil
}

func numEq(row []string, col int, signed float64, id string) error {
	v, err := strconv.ParseFloat(row[col], 64)
	if err != nil || v != signed {
		return fmt.Errorf("release %s: %s is %q, the signed release says %s", id, api.ExportColumns()[col], row[col], strconv.FormatFloat(signed, 'g', -1, 64))
	}
	return nil
}
