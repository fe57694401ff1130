// Package report builds edgefw's audit report for a period and renders
// it as Markdown, JSON or one self-contained HTML file: identity (host,
// version, period, whether the journal's hash chain holds), exposure
// (what the running ruleset lets through, per direction, in sentences),
// changes and integrity events (from the journal), denied, would-deny
// and allowed traffic per rule per day (from the daily counter rollups,
// with the logged sample's top sources and ports, surges marked), and
// tunnel availability per peer.
//
// It is pure: Build takes what the daemon gathered (Input: its journal,
// the running ruleset's exposure and rules, the daily rollups through
// the Traffic interface) and the time it is asked at, and returns the
// Report, the model that the JSON form is and docs/report.schema.json
// describes. It imports none of the packages it reports on; the daemon
// converts their values into the report's own, which are the report's
// contract with its readers and change only compatibly (SchemaVersion).
package report

import "time"

// SchemaVersion is the version of the JSON model: it changes when a
// field is removed or changes meaning, never when one is added.
const SchemaVersion = 1

// Report is the audit report of one host for one period.
type Report struct {
	SchemaVersion int      `json:"schemaVersion"`
	Identity      Identity `json:"identity"`
	Exposure      Exposure `json:"exposure"`
	// Changes are the journal's applies, failed applies, confirms,
	// rollbacks, removes, boots and safe fallbacks in the period.
	Changes []Event `json:"changes"`
	// Integrity are the events that tell whether the host enforced its
	// policy all along: drift repairs, failed applies, safe fallbacks,
	// rollbacks by timeout or at restart, removes, journal rotations.
	Integrity []Event `json:"integrity"`
	// Denied is the traffic the rules that drop or reject denied, per
	// day; WouldDeny that of the rules in audit mode, which let it
	// through; Allowed that of the rules that accept; Retired that of
	// rules no longer in the running ruleset that counted in the period.
	Denied    []RuleTraffic `json:"denied"`
	WouldDeny []RuleTraffic `json:"wouldDeny"`
	Allowed   []RuleTraffic `json:"allowed"`
	Retired   []RuleTraffic `json:"retired"`
	// Tunnels is the availability of each tunnel peer.
	Tunnels []PeerAvailability `json:"tunnels"`
}

// Identity says what the report is of.
type Identity struct {
	Host    string `json:"host"`
	Version string `json:"version"`
	// From and To are the period; To is never after GeneratedAt.
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Days are the UTC days the traffic sections cover: those of From
	// to To, whole.
	FirstDay string `json:"firstDay"`
	LastDay  string `json:"lastDay"`
	// Policy is the running policy.
	Policy PolicyRef `json:"policy"`
	// Journal is the verification of the journal's hash chain.
	Journal JournalCheck `json:"journal"`
}

// PolicyRef names the running policy: its main file and the SHA-256 of
// its files, as the journal's policy hashes are.
type PolicyRef struct {
	Path string `json:"path"`
	Hash string `json:"hash"`
}

// JournalCheck is what verifying the journal's hash chain found.
type JournalCheck struct {
	// Verified is true when the chain holds.
	Verified bool `json:"verified"`
	// Summary says so in one sentence, or where it breaks.
	Summary string `json:"summary"`
	Entries int    `json:"entries"`
	// FirstSeq and LastSeq are the first and last entries kept; Head is
	// the SHA-256 of the last one's line (note it, to tell later whether
	// entries were cut from the end).
	FirstSeq uint64 `json:"firstSeq"`
	LastSeq  uint64 `json:"lastSeq"`
	Head     string `json:"head"`
	// RotatedAway counts the entries before FirstSeq that rotation
	// removed, as the chain records.
	RotatedAway uint64 `json:"rotatedAway"`
	// Torn are the lines a crash cut short, skipped ("file:line").
	Torn []string `json:"torn"`
	// Break is where the chain does not hold; nil when it does.
	Break *ChainBreak `json:"break"`
	// Error says why the journal could not be verified.
	Error string `json:"error,omitempty"`
}

// ChainBreak is the entry where the chain does not hold.
type ChainBreak struct {
	// Seq is the entry that was altered or is missing, when known.
	Seq    uint64 `json:"seq"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Event is a journal entry as the report shows it.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is one of the Kind constants.
	Kind    string `json:"kind"`
	Trigger string `json:"trigger,omitempty"`
	// By is who asked on the control socket; nil for edgefwd's own doings.
	By *Caller `json:"by,omitempty"`
	// ChangedBy is the process that changed the table (drift repairs).
	ChangedBy string `json:"changedBy,omitempty"`
	Source    string `json:"source,omitempty"`
	// PolicyBefore and PolicyAfter are the SHA-256 of the running
	// policy's files before and after.
	PolicyBefore string   `json:"policyBefore,omitempty"`
	PolicyAfter  string   `json:"policyAfter,omitempty"`
	Changes      *Changes `json:"changes,omitempty"`
	Error        string   `json:"error,omitempty"`
	Detail       string   `json:"detail,omitempty"`
	Interface    string   `json:"interface,omitempty"`
	Peer         string   `json:"peer,omitempty"`
	Version      string   `json:"version,omitempty"`
	Drift        *Drift   `json:"drift,omitempty"`
	Rotated      *Rotated `json:"rotated,omitempty"`
	Failsafe     []string `json:"failsafe,omitempty"`
	// Summary says in a sentence what happened; Build writes it.
	Summary string `json:"summary"`
}

// The kinds of events, as the journal names them.
const (
	KindApply        = "apply"
	KindApplyFailed  = "apply-failed"
	KindConfirm      = "confirm"
	KindRollback     = "rollback"
	KindDriftRepair  = "drift-repair"
	KindBoot         = "boot"
	KindSafeFallback = "safe-fallback"
	KindRemove       = "remove"
	KindPeerUp       = "peer-up"
	KindPeerDown     = "peer-down"
	KindRotated      = "rotated"
)

// Caller is who sent a request on the control socket (SO_PEERCRED).
type Caller struct {
	UID  int    `json:"uid"`
	User string `json:"user,omitempty"`
}

// Changes is what an apply wrote, in the policy's terms: the counts are
// exact, the names bounded.
type Changes struct {
	RulesAdded      int      `json:"rulesAdded"`
	RulesRemoved    int      `json:"rulesRemoved"`
	RulesChanged    int      `json:"rulesChanged"`
	ElementsAdded   int      `json:"elementsAdded"`
	ElementsRemoved int      `json:"elementsRemoved"`
	Added           []string `json:"added"`
	Removed         []string `json:"removed"`
	Changed         []string `json:"changed"`
}

// Drift is how many repairs a drift-repair entry stands for.
type Drift struct {
	Repairs  int       `json:"repairs"`
	Failures int       `json:"failures"`
	Commits  uint64    `json:"commits"`
	Since    time.Time `json:"since"`
	Ended    bool      `json:"ended"`
}

// Rotated is what a rotation removed from the journal.
type Rotated struct {
	FirstSeq uint64 `json:"firstSeq"`
	LastSeq  uint64 `json:"lastSeq"`
}

// RuleTraffic is one rule's traffic in the period, per UTC day.
type RuleTraffic struct {
	Rule string `json:"rule"`
	// Direction, Action, Kind (user, implicit, default, limited) and Mode
	// (enforce, audit) are the running ruleset's; empty for a retired
	// rule.
	Direction string `json:"direction,omitempty"`
	Action    string `json:"action,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Mode      string `json:"mode,omitempty"`
	// Packets and Bytes are the kernel counter's, exact, summed over the
	// days.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// MedianPackets and MedianBytes are the medians over the days the
	// counter was read; SurgeDays counts the days marked as surges.
	MedianPackets float64 `json:"medianPackets"`
	MedianBytes   float64 `json:"medianBytes"`
	SurgeDays     int     `json:"surgeDays"`
	// Sampled is how many of the packets were logged; Share is Sampled ÷
	// the packets counted over the same buckets (null when none were),
	// the sample the tops are drawn from.
	Sampled    uint64        `json:"sampled"`
	Share      *float64      `json:"share"`
	TopSources []SourceCount `json:"topSources"`
	TopPorts   []PortCount   `json:"topPorts"`
	// Days are the days of the period the counter was read or the log
	// sampled, oldest first.
	Days []Day `json:"days"`
}

// Day is a rule's traffic on one UTC day.
type Day struct {
	Date    string `json:"date"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Surge is a day over SurgeFactor times the rule's median, in packets
	// or bytes.
	Surge      bool          `json:"surge"`
	Sampled    uint64        `json:"sampled"`
	Share      *float64      `json:"share"`
	TopSources []SourceCount `json:"topSources"`
	TopPorts   []PortCount   `json:"topPorts"`
}

// SourceCount is a source's packets in the sample: at most Count, at
// least Count−ErrorBound.
type SourceCount struct {
	Source     string `json:"source"`
	Count      uint64 `json:"count"`
	ErrorBound uint64 `json:"errorBound"`
}

// PortCount is a destination port's packets in the sample (port 0 for
// protocols without ports).
type PortCount struct {
	Protocol   string `json:"protocol"`
	Port       uint16 `json:"port"`
	Count      uint64 `json:"count"`
	ErrorBound uint64 `json:"errorBound"`
}

// PeerAvailability is how long a tunnel peer was up in the period.
type PeerAvailability struct {
	Interface string `json:"interface"`
	Peer      string `json:"peer"`
	// Declared is whether the running policy declares the peer.
	Declared bool `json:"declared"`
	// StateAtStart is up, down or unknown: the last transition the
	// journal holds before the period, unknown if none.
	StateAtStart string `json:"stateAtStart"`
	// Seconds up, down and unknown (before the first transition known),
	// which sum to the period; ShareUp is the up part of the period.
	UpSeconds      float64 `json:"upSeconds"`
	DownSeconds    float64 `json:"downSeconds"`
	UnknownSeconds float64 `json:"unknownSeconds"`
	ShareUp        float64 `json:"shareUp"`
	// Outages counts the periods down, LongestOutage is the longest
	// (clipped to the period); nil when the peer was never seen down.
	Outages       int     `json:"outages"`
	LongestOutage *Outage `json:"longestOutage"`
	// Segments are the states in order, covering the period.
	Segments []Segment `json:"segments"`
}

// Outage is a period a peer was down, clipped to the report's period.
type Outage struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Seconds float64   `json:"seconds"`
	// BeganBefore and Ongoing say that it began before the period, or
	// still went on at its end.
	BeganBefore bool `json:"beganBefore"`
	Ongoing     bool `json:"ongoing"`
}

// Segment is a part of the period in one state.
type Segment struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	State string    `json:"state"`
}

// The states of a peer.
const (
	StateUp      = "up"
	StateDown    = "down"
	StateUnknown = "unknown"
)
