package brief

// Data is everything a brief shows, as the node's public API published
// it. Fetch fills it; Render turns it into HTML and reads nothing else, so
// the same Data gives the same brief.
type Data struct {
	Year         int
	Consortium   string   // the consortium's name
	ConsortiumID string   // the genesis hash
	Partners     []string // partner codes in ledger order
	// Region is victims per year for the whole region (rollup year,region).
	Region []Point
	// Countries is victims per year for each partner, in Partners order.
	Countries []Country
	// Corridors and Forms are the year's regional tables; an empty
	// Indicator means the catalog has no such table.
	Corridors Table
	Forms     Table
	Budget    Budget
	// Checkpoint is the signed tree head every release below is inside.
	Checkpoint Checkpoint
	// Releases are those the year's figures rest on, by leaf.
	Releases []Release
	// EarlierReleases counts the other releases the trends use.
	EarlierReleases int
}

// Point is one point of GET /v1/series.
type Point struct {
	Partner      string    `json:"partner"`
	Period       string    `json:"period"`
	Key          []string  `json:"key"`
	Raw          *Interval `json:"raw"`
	Estimate     *Interval `json:"estimate"`
	TooUncertain bool      `json:"too_uncertain"`
	Small        bool      `json:"small"`
	Change       *Change   `json:"change"`
	ReleaseIDs   []string  `json:"release_ids"`
}

// Interval is a value with its 95% interval.
type Interval struct {
	Value  float64 `json:"value"`
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
}

// Change is a point's change from the period before, as the API reads it.
type Change struct {
	From    string  `json:"from"`
	Value   float64 `json:"value"`
	CILow   float64 `json:"ci_low"`
	CIHigh  float64 `json:"ci_high"`
	Reading string  `json:"reading"` // "not distinguishable from no change", "increase" or "decrease"
}

// Country is one partner's yearly points.
type Country struct {
	Code   string
	Points []Point
}

// Table is a two-dimensional regional breakdown for the year.
type Table struct {
	Indicator      string
	RowDim, ColDim string
	Rows, Cols     []string // the catalog's keys, in its order
	Cells          []Point  // Key is [row, col]
}

// Budget is GET /v1/budget.
type Budget struct {
	Accounting string          `json:"accounting"`
	Cap        float64         `json:"cap"`
	Partners   []PartnerBudget `json:"partners"`
}

// PartnerBudget is one partner's spend per quarter.
type PartnerBudget struct {
	Partner  string `json:"partner"`
	Quarters []struct {
		Quarter string  `json:"quarter"`
		Spent   float64 `json:"spent"`
		Left    float64 `json:"left"`
	} `json:"quarters"`
}

// Checkpoint is GET /v1/checkpoint.
type Checkpoint struct {
	Origin   string   `json:"origin"`
	Size     int64    `json:"size"`
	Root     []byte   `json:"root"`
	Signers  []string `json:"signers"`
	Regional bool     `json:"regional"`
}

// Release is one release the brief's figures for the year rest on.
type Release struct {
	ID         string
	Partner    string
	Period     string
	Leaf       int64
	Accounting string
	SpendMicro int64
}
