package policy

import (
	"cmp"
	"slices"
	"strings"
)

// Error is one problem in a policy, positioned at the value it concerns.
// Its text is FILE:LINE:COL: field.path: what is wrong; what would be valid.
// A problem found by Validate in a policy built in code has no position:
// its text is field.path: what is wrong; what would be valid.
type Error struct {
	// Pos is where the offending value is written. Line is 0 for problems
	// with a file as a whole, such as a file that cannot be read, and Pos
	// is zero for a policy that was not read from files.
	Pos Pos
	// Path is the field path within the file, such as rules[2].ports[0].endPort.
	// It is empty for problems that concern no field (a YAML syntax error).
	Path string
	// Msg says what is wrong and what would be valid.
	Msg string
	// Err is the underlying cause, if any (a failed read), so that callers
	// can test errors.Is(err, fs.ErrNotExist) on what Load returns.
	Err error
}

// Error renders the error as FILE:LINE:COL: path: message, leaving out
// what it does not have: FILE: message for a file as a whole, path:
// message without a position.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Pos.Line > 0:
		b.WriteString(e.Pos.String())
		b.WriteString(": ")
	case e.Pos.File != "":
		b.WriteString(e.Pos.File)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, or nil.
func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem found in one Load or Parse, sorted by file
// (in the order the files are merged: main file, drop-ins, set files), then
// line and column.
type ErrorList []*Error

// Error renders one error per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors of the list, for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders the list by file rank (files missing from rank sort last, by
// name), then line, then column. The sort is stable so that two problems at
// one position keep the order they were found in.
func (l ErrorList) sort(rank map[string]int) {
	fileRank := func(file string) int {
		if r, ok := rank[file]; ok {
			return r
		}
		return len(rank)
	}
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(fileRank(a.Pos.File), fileRank(b.Pos.File)),
			strings.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
		)
	})
}
