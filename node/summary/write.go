package summary

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Write prints the summary as two aligned text tables, cases and distinct
// persons, with a row per status, sex and age group, a column per year and
// one for all years. The first line is Banner.
func (s *Summary) Write(w io.Writer) error {
	var b strings.Builder
	b.WriteString(Banner + "\n")
	if len(s.years) == 0 {
		b.WriteString("\nno cases\n")
		_, err := io.WriteString(w, b.String())
		return wrap(err)
	}
	s.block(&b, "Cases", func(c Counts) int { return c.Cases })
	s.block(&b, "Distinct persons (each person once per row; a person whose cases differ\n"+
		"in status, sex or age group is in each of those rows, once in the total)",
		func(c Counts) int { return c.Persons })
	_, err := io.WriteString(w, b.String())
	return wrap(err)
}

func wrap(err error) error {
	if err != nil {
		return fmt.Errorf("summary: write: %w", err)
	}
	return nil
}

// block writes one table: labels left-aligned, numbers right-aligned.
func (s *Summary) block(b *strings.Builder, title string, pick func(Counts) int) {
	head := []string{"", ""}
	for _, y := range s.years {
		head = append(head, strconv.Itoa(y))
	}
	head = append(head, "all years")
	cells := [][]string{head}
	for i := range nRows {
		d, v := rowLabel(i)
		dim := string(d)
		if i > 0 && d == Total {
			continue
		}
		if prev, _ := rowLabel(i - 1); i > 0 && prev == d {
			dim = "" // name each dimension once, on its first row
		}
		row := []string{dim, v}
		for _, y := range s.years {
			row = append(row, strconv.Itoa(pick(s.byYear[y].rows[i])))
		}
		cells = append(cells, append(row, strconv.Itoa(pick(s.all.rows[i]))))
	}
	width := make([]int, len(head))
	for _, row := range cells {
		for j, c := range row {
			width[j] = max(width[j], utf8.RuneCountInString(c))
		}
	}
	b.WriteString("\n" + title + "\n")
	for _, row := range cells {
		var line strings.Builder
		for j, c := range row {
			pad := strings.Repeat(" ", width[j]-utf8.RuneCountInString(c))
			switch {
			case j < 2: // labels
				line.WriteString(c + pad + "  ")
			default:
				line.WriteString("  " + pad + c)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}
