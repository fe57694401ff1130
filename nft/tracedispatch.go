package nft

import "fmt"

// dispatch follows a verdict map: to the chain of the packet's port, or
// on to the next rule. In a direct map the port's key decides: it counts
// the packet in its rule's counter and gives that rule's verdict. It
// reports whether the packet was decided.
func (t *tracer) dispatch(ch *Chain, i int, r *Rule, step TraceStep, depth int) bool {
	d := r.Dispatch
	e, ok := d.elementFor(t.p.Protocol, t.p.DstPort)
	switch {
	case t.p.Protocol != d.Proto:
		step.Result, step.Reason = TraceNoMatch, fmt.Sprintf("a %s packet; the map is for %s", t.p.Protocol, d.Proto)
	case !ok:
		step.Result, step.Reason = TraceNoMatch, fmt.Sprintf("%s port %d is not a key of the map: no rule of these ports matches it", d.Proto, t.p.DstPort)
	case e.Rule != nil:
		// The key's rule matches on its protocol and ports alone.
		matched, _, _ := t.rule(e.Rule)
		t.decide(ch, i, e.Rule, matched)
		t.v.Nft = r.String()
		return true
	default:
		step.Result = TraceJump
		target := t.chainNamed(e.Chain)
		if target == nil || depth+1 >= traceMaxJumps {
			step.Reason = "jump to " + e.Chain + ", which does not exist or nests too deep; the kernel refuses such a ruleset"
			break
		}
		step.Reason = fmt.Sprintf("%s port %d is in key %s: to %s, the rules of these ports in order; back when no rule there decides",
			d.Proto, t.p.DstPort, portsName(e.Ports), e.Chain)
		t.v.Passed = append(t.v.Passed, step)
		return t.walk(target, depth+1)
	}
	t.v.Passed = append(t.v.Passed, step)
	return false
}
