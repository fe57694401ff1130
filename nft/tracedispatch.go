package nft

import "fmt"

// dispatch follows a verdict map: to the chain of the packet's port, or
// on to the next rule. It reports whether that chain decided.
func (t *tracer) dispatch(ch *Chain, r *Rule, step TraceStep, depth int) bool {
	d := r.Dispatch
	e, ok := d.chainFor(t.p.Protocol, t.p.DstPort)
	switch {
	case t.p.Protocol != d.Proto:
		step.Result, step.Reason = TraceNoMatch, fmt.Sprintf("a %s packet; the map is for %s", t.p.Protocol, d.Proto)
	case !ok:
		step.Result, step.Reason = TraceNoMatch, fmt.Sprintf("%s port %d is not a key of the map: no rule of these ports matches it", d.Proto, t.p.DstPort)
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
