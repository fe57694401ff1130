package daemon

import (
	"path/filepath"
	"slices"

	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/report"
)

// The report is a package of its own, importing none of those it
// reports on: these convert their values into the report's, which are
// its contract with its readers (docs/report.schema.json).

// reportEvents converts the journal's entries.
func reportEvents(entries []journal.Entry) []report.Event {
	out := make([]report.Event, len(entries))
	for i, e := range entries {
		ev := report.Event{Seq: e.Seq, Time: e.Time, Kind: string(e.Kind), Trigger: e.Trigger, ChangedBy: e.ChangedBy,
			Source: e.Source, PolicyBefore: e.PolicyBefore, PolicyAfter: e.PolicyAfter, Error: e.Error, Detail: e.Detail,
			Interface: e.Interface, Peer: e.Peer, Version: e.Version, Failsafe: e.Failsafe}
		if e.By != nil {
			ev.By = &report.Caller{UID: e.By.UID, User: e.By.User}
		}
		if c := e.Changes; c != nil {
			ev.Changes = &report.Changes{RulesAdded: c.RulesAdded, RulesRemoved: c.RulesRemoved, RulesChanged: c.RulesChanged,
				ElementsAdded: c.ElementsAdded, ElementsRemoved: c.ElementsRemoved,
				Added: c.Added, Removed: c.Removed, Changed: c.Changed}
		}
		if d := e.Drift; d != nil {
			ev.Drift = &report.Drift{Repairs: d.Repairs, Failures: d.Failures, Commits: d.Commits, Since: d.Since, Ended: d.Ended}
		}
		if r := e.Rotated; r != nil {
			ev.Rotated = &report.Rotated{FirstSeq: r.FirstSeq, LastSeq: r.LastSeq}
		}
		out[i] = ev
	}
	return out
}

// reportChain converts what verifying the journal found.
func reportChain(v *journal.Verification, err error) report.JournalCheck {
	if err != nil {
		return report.JournalCheck{Summary: "the journal could not be read", Error: err.Error(), Torn: []string{}}
	}
	c := report.JournalCheck{Verified: v.OK(), Summary: v.String(), Entries: v.Entries, FirstSeq: v.FirstSeq,
		LastSeq: v.LastSeq, Head: v.Head, RotatedAway: v.RotatedAway, Torn: []string{}}
	for _, l := range v.Torn {
		c.Torn = append(c.Torn, l.String())
	}
	if b := v.Break; b != nil {
		c.Break = &report.ChainBreak{Seq: b.Seq, File: filepath.Base(b.File), Line: b.Line, Reason: b.Reason}
	}
	return c
}

// reportRules converts the running ruleset's counters.
func reportRules(rules []nft.RuleInfo) []report.Rule {
	out := make([]report.Rule, len(rules))
	for i, r := range rules {
		out[i] = report.Rule{Name: r.Name, Direction: string(r.Direction), Action: string(r.Action), Kind: r.Kind, Mode: ruleMode(r)}
	}
	return out
}

// reportExposure converts the running ruleset's exposure.
func reportExposure(e nft.Exposure) report.Exposure {
	out := report.Exposure{Directions: []report.DirectionExposure{}}
	for _, d := range e.Directions {
		rd := report.DirectionExposure{Direction: string(d.Direction), Default: string(d.Default), DefaultCounter: d.DefaultCounter,
			DefaultLogged: d.DefaultLogged, Rules: []report.ExposedRule{}}
		for _, r := range d.Rules {
			rd.Rules = append(rd.Rules, reportExposedRule(r))
		}
		out.Directions = append(out.Directions, rd)
	}
	return out
}

func reportExposedRule(r nft.ExposedRule) report.ExposedRule {
	out := report.ExposedRule{Rule: r.Counter, Kind: r.Kind, Implicit: string(r.Implicit), Tunnel: r.Tunnel, Action: string(r.Action),
		Mode: string(r.Mode), Logged: r.Logged, Family: string(r.Family), States: slices.Clone(r.States),
		LimitedCounter: r.LimitedCounter, Never: r.Never,
		Services: []report.Service{}, From: reportEndpoints(r.From), To: reportEndpoints(r.To)}
	for _, s := range r.Services {
		rs := report.Service{Protocol: string(s.Protocol), ICMPTypes: slices.Clone(s.ICMPTypes)}
		for _, p := range s.Ports {
			rs.Ports = append(rs.Ports, report.PortRange{From: p.From, To: p.To})
		}
		out.Services = append(out.Services, rs)
	}
	if l := r.Limit; l != nil {
		out.Limit = &report.Limit{Rate: l.Rate, Per: l.Per, Burst: l.Burst, PerSource: l.PerSource}
	}
	if c := r.ConnLimit; c != nil {
		out.ConnLimit = &report.ConnLimit{Max: c.Max, PerSource: c.PerSource}
	}
	return out
}

func reportEndpoints(eps []nft.Endpoint) []report.Endpoint {
	out := []report.Endpoint{}
	for _, ep := range eps {
		re := report.Endpoint{Set: ep.Set, Interface: ep.Interface}
		if ep.Prefix.IsValid() {
			re.CIDR = ep.Prefix.String()
		}
		for _, x := range ep.Except {
			re.Except = append(re.Except, x.String())
		}
		if s := ep.SetSize; s != nil {
			re.Size = &report.SetSize{IPv4Ranges: s.IPv4Ranges, IPv6Ranges: s.IPv6Ranges, IPv4Addresses: s.IPv4Addresses, Singles: s.Singles}
		}
		out = append(out, re)
	}
	return out
}
