package nft

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"
)

// tableText is table inet edgefw laid out as nft text. It is the one
// rendering of both a compiled Ruleset and what the kernel holds
// (Inspect), so that the two compare line by line.
type tableText struct {
	counters []string
	// sets are the named sets, then the meters.
	sets   []setText
	chains []chainText
}

// setText declares a named set or a meter.
type setText struct {
	name, typ string
	// size is the declared maximum number of elements; 0: none declared.
	size    uint32
	flags   []string
	timeout time.Duration
	// elements are listed as renderElements lists them; "": none.
	elements string
}

// chainText is a chain with one line per rule.
type chainText struct {
	name string
	// header declares a base chain; "" for a regular chain.
	header string
	rules  []string
}

// baseChainHeader declares a base chain as nft lists it.
func baseChainHeader(typ, hook, priority, policy string) string {
	return fmt.Sprintf("type %s hook %s priority %s; policy %s;", typ, hook, priority, policy)
}

// String renders the table as nft text.
func (t *tableText) String() string {
	var b strings.Builder
	t.write(&b)
	return b.String()
}

// write renders the table as nft text into w, which may be a hash: the
// text of 10,000 rules is a few megabytes that need not be held.
func (t *tableText) write(w io.Writer) {
	b := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(b, "table inet %s {\n", TableName)
	for _, c := range t.counters {
		fmt.Fprintf(b, "\tcounter %s {\n\t}\n\n", c)
	}
	for _, s := range t.sets {
		b.WriteString(s.String())
		b.WriteString("\n")
	}
	for i, c := range t.chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(b, "\tchain %s {\n", c.name)
		if c.header != "" {
			fmt.Fprintf(b, "\t\t%s\n", c.header)
		}
		for _, r := range c.rules {
			b.WriteString("\t\t")
			b.WriteString(r)
			b.WriteString("\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	// Writing to a strings.Builder or a hash does not fail.
	_ = b.Flush()
}

// String renders the set's declaration as nft lists it.
func (s setText) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.name, s.typ)
	if s.size > 0 {
		fmt.Fprintf(&b, "\t\tsize %d\n", s.size)
	}
	if len(s.flags) > 0 {
		fmt.Fprintf(&b, "\t\tflags %s\n", strings.Join(s.flags, ","))
	}
	if s.timeout > 0 {
		fmt.Fprintf(&b, "\t\ttimeout %s\n", nftDuration(s.timeout))
	}
	if s.elements != "" {
		fmt.Fprintf(&b, "\t\telements = { %s }\n", s.elements)
	}
	b.WriteString("\t}\n")
	return b.String()
}
