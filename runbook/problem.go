package runbook

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// FieldError is a problem with one field, before it has a place in a file.
// Field is a path such as "spec.steps[3].with.maxUnavailable" (for SettingsValidator: relative to with).
type FieldError struct {
	Field   string
	Message string
	Hint    string
	// Secret: the field holds a credential, so the problem does not quote its line.
	Secret bool
}

// Problem is a problem at a place in a runbook file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`   // 1-based; 0 when the problem has no place
	Column  int    `json:"column"` // 1-based
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`

	snippet string // the offending line
}

// Problems are every problem found in a runbook; as an error it prints them all.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// String renders FILE:LINE:COL: field: message, the line with a caret under the column, and the hint.
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%s:%d:%d: ", p.File, p.Line, p.Column)
	} else {
		fmt.Fprintf(&b, "%s: ", p.File)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	if p.Line > 0 && p.snippet != "" {
		num := strconv.Itoa(p.Line)
		fmt.Fprintf(&b, "\n  %s | %s", num, strings.ReplaceAll(p.snippet, "\t", " "))
		col := p.Column
		if col < 1 {
			col = 1
		}
		fmt.Fprintf(&b, "\n  %s | %s^", strings.Repeat(" ", len(num)), caretPad(p.snippet, col-1))
	}
	if p.Hint != "" {
		fmt.Fprintf(&b, "\n  hint: %s", p.Hint)
	}
	return b.String()
}

// caretPad is the white space that puts a caret under column n of line (multi-byte runes count once).
func caretPad(line string, n int) string {
	runes := []rune(line)
	if n > len(runes) {
		n = len(runes)
	}
	return strings.Repeat(" ", n)
}

func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Column < ps[j].Column
	})
}

// suggest returns the candidate closest to s, when it is close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", len(s)/2+2
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(s), strings.ToLower(c))
		if d < bestDist || (d == bestDist && best == "") {
			if d <= max(2, len(s)/3) {
				best, bestDist = c, d
			}
		}
	}
	return best
}

// levenshtein is the edit distance between a and b. (Twelve lines: not worth a dependency.)
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// fieldPath renders path tokens as spec.steps[3].with.timeout.
func fieldPath(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteString(".")
		}
		b.WriteString(t)
	}
	return b.String()
}

// parseFieldPath turns spec.steps[3].with.timeout back into tokens.
func parseFieldPath(path string) []string {
	var tokens []string
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				tokens = append(tokens, part)
				break
			}
			if i > 0 {
				tokens = append(tokens, part[:i])
			}
			j := strings.IndexByte(part[i:], ']')
			if j < 0 {
				tokens = append(tokens, part[i:])
				break
			}
			tokens = append(tokens, part[i+1:i+j])
			part = part[i+j+1:]
		}
	}
	return tokens
}
