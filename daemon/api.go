package daemon

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// Paths of the control API (HTTP+JSON over the Unix socket). Versioned so
// a newer edgefwctl can talk to an older daemon and the reverse.
const (
	PathStatus   = "/v1/status"   // GET → Status
	PathReload   = "/v1/reload"   // POST → ApplyResponse
	PathApply    = "/v1/apply"    // POST ApplyRequest → ApplyResponse
	PathConfirm  = "/v1/confirm"  // POST → ApplyResponse
	PathRollback = "/v1/rollback" // POST → ApplyResponse
	PathPlan     = "/v1/ruleset"  // GET → Ruleset (the running ruleset as nft text)
	PathDiff     = "/v1/diff"     // POST DiffRequest → Diff (a policy against the table in the kernel)
	PathPeers    = "/v1/peers"    // GET → []wg.TunnelStatus
	PathDenied   = "/v1/denied"   // GET ?since=&from=&to=&rule=&top= (DropsQuery) → DropsView
	// PathDrops is the path of edgefwctl 0.x's drops: GET → []DropRecord,
	// the heaviest flows of the last 24 hours. Kept for older clients.
	PathDrops  = "/v1/drops"
	PathRemove = "/v1/remove" // POST RemoveRequest → ApplyResponse
	// PathJournal answers the audit journal's entries, at or after the
	// RFC 3339 time of its optional query parameter since.
	PathJournal       = "/v1/journal"        // GET [?since=TIME] → []journal.Entry
	PathJournalVerify = "/v1/journal/verify" // GET → journal.Verification
	// PathReport answers the audit report of the period of its query
	// parameters: since (a duration back from now), or from and to (a
	// date or an RFC 3339 time), as PathDenied reads them; none is the
	// last DefaultReportPeriod.
	PathReport = "/v1/report" // GET ?since=|from=&to= → report.Report
)

// Status is the daemon's state as `edgefwctl status` shows it.
type Status struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"startedAt"`
	// UptimeSeconds is measured by the daemon, so clients need no clock.
	UptimeSeconds float64 `json:"uptimeSeconds"`
	// Policy is where the running policy came from.
	Policy PolicySource `json:"policy"`
	// PolicyFiles is set while the running policy was given by
	// `edgefwctl apply` rather than read from the policy files: how the
	// files compare with it.
	PolicyFiles *PolicyFiles `json:"policyFiles,omitempty"`
	// LastApply is the most recent apply attempt, successful or not.
	LastApply *ApplyInfo `json:"lastApply,omitempty"`
	// LastSuccess is the most recent successful apply.
	LastSuccess *ApplyInfo `json:"lastSuccess,omitempty"`
	// Rules lists every counter of the running ruleset: user rules in
	// policy order, implicit rules and default policies.
	Rules []RuleStatus `json:"rules"`
	// Tunnels and their peers with health.
	Tunnels []wg.TunnelStatus `json:"tunnels"`
	// Pending is set while an apply awaits `edgefwctl confirm`.
	Pending *Pending `json:"pending,omitempty"`
	// DriftRepairs counts restorations of the table since start.
	DriftRepairs uint64 `json:"driftRepairs"`
	// Warnings an operator should read, e.g. other tables hooked at the
	// same points whose drops apply on top of ours.
	Warnings []string `json:"warnings"`
	// OtherTables are the base chains of other tables at our hooks.
	OtherTables []HookedChain `json:"otherTables"`
	// Journal is where the audit journal is and its head.
	Journal *JournalStatus `json:"journal,omitempty"`
	// Cluster is the Kubernetes source of policy, if edgefwd has one.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// JournalStatus is the audit journal's head: an auditor who notes it can
// tell later whether entries were cut from the end, which no hash chain
// can tell by itself.
type JournalStatus struct {
	// Path is the journal's directory.
	Path string `json:"path"`
	// Entries is the sequence number of the last entry: how many entries
	// were ever appended, rotated ones included.
	Entries uint64 `json:"entries"`
	// Head is the SHA-256 of the last entry's line.
	Head string `json:"head,omitempty"`
	// Error says why the journal could not be opened.
	Error string `json:"error,omitempty"`
}

// PolicySource identifies the running policy.
type PolicySource struct {
	// Path of the main policy file, or of the file given to `apply`.
	Path string `json:"path"`
	// Files read, with their SHA-256, in merge order.
	Files []FileHash `json:"files"`
	// Hash is a SHA-256 over all files, for comparing hosts at a glance.
	Hash string `json:"hash"`
	// Applied is true when it was given by `edgefwctl apply` rather than
	// read from the policy path. Once confirmed (or applied without
	// --confirm-timeout) it stays the running policy across reloads and
	// restarts, until the policy files change or `edgefwctl reload
	// --from-files`.
	Applied bool `json:"applied"`
	// AppliedAt and AppliedBy say when and by whom it was applied.
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	AppliedBy *Caller   `json:"appliedBy,omitempty"`
	// FilesFingerprint identifies the policy files' contents when it was
	// applied; once they differ, the daemon returns to them.
	FilesFingerprint string `json:"filesFingerprint,omitempty"`
}

// Caller is who sent a request on the control socket, from SO_PEERCRED.
type Caller struct {
	UID  int    `json:"uid"`
	User string `json:"user,omitempty"`
}

// String renders the caller as "alice (uid 1000)".
func (c *Caller) String() string {
	if c == nil {
		return "unknown"
	}
	if c.User == "" {
		return fmt.Sprintf("uid %d", c.UID)
	}
	return fmt.Sprintf("%s (uid %d)", c.User, c.UID)
}

// PolicyFiles compares the policy files with a running policy that was
// given by `edgefwctl apply`.
type PolicyFiles struct {
	// Path is the main policy file.
	Path string `json:"path"`
	// Differs is true when the files compile to another ruleset.
	Differs bool `json:"differs"`
	// Error says why the files do not load, if they do not.
	Error string `json:"error,omitempty"`
}

// FileHash is one policy file and its SHA-256.
type FileHash struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// ApplyInfo describes one apply attempt.
type ApplyInfo struct {
	Time            time.Time `json:"time"`
	DurationSeconds float64   `json:"durationSeconds"`
	OK              bool      `json:"ok"`
	Error           string    `json:"error,omitempty"`
	// Trigger says why: start, boot-ruleset, restart, safe-fallback,
	// signal, file-change, reload, apply, confirm-timeout, rollback, drift.
	Trigger string `json:"trigger"`
	// Messages written to the kernel; 0 when it already matched.
	Messages int `json:"messages"`
	// Changes summarises what was written.
	Changes []string `json:"changes,omitempty"`
}

// RuleStatus is one counter of the running ruleset.
type RuleStatus struct {
	Name      string `json:"name"`
	Direction string `json:"direction"`
	Action    string `json:"action"`
	// Kind is user, implicit, default or limited.
	Kind string `json:"kind"`
	// Mode is enforce, or audit for the counters of a rule in audit mode:
	// they count what the rule would do (Action) and let it go on. A
	// daemon older than audit mode leaves it empty: enforce.
	Mode    string `json:"mode"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Source is where a user rule was written: its file, or
	// hostfirewallpolicy/NAME for a cluster object's rule.
	Source string `json:"source,omitempty"`
}

// Pending is an apply waiting for confirmation.
type Pending struct {
	Path     string    `json:"path"`
	Deadline time.Time `json:"deadline"`
	// SecondsLeft is computed by the daemon at the time of the request.
	SecondsLeft float64 `json:"secondsLeft"`
}

// HookedChain is a base chain of another table at one of our hooks.
type HookedChain struct {
	Family   string `json:"family"`
	Table    string `json:"table"`
	Chain    string `json:"chain"`
	Hook     string `json:"hook"`
	Priority int32  `json:"priority"`
	Policy   string `json:"policy"`
}

// MaxRequestSize bounds the body of a request, in bytes: an apply or a
// diff carries a policy's files, its set files of up to 64 MiB each
// included, base64-encoded (a third larger than on disk).
const MaxRequestSize = 256 << 20

// PolicyRequest is the policy an apply or a diff request carries: the
// policy's files as edgefwctl read them (policy.ReadBundle), which the
// daemon parses itself (policy.ParseBundle), as it parses its own policy
// files. The files travel, not the parsed policy, because the daemon,
// sandboxed, may not be able to read the operator's files, and so that it
// checks the very bytes the operator wrote and names them, with lines and
// columns, in its errors.
type PolicyRequest struct {
	// Path is the absolute path of the main policy file, for status,
	// logs and errors.
	Path string `json:"path"`
	// Files are the main file, the drop-ins beside it and the set files
	// they name, by absolute path; contents travel base64-encoded.
	Files policy.Bundle `json:"files,omitempty"`
	// Policy is the parsed policy that edgefwctl sent before it sent
	// Files. Deprecated: the daemon still accepts it from an older
	// edgefwctl, checks it with policy.Validate and says in its answer
	// that edgefwctl should be upgraded.
	Policy *policy.Policy `json:"policy,omitempty"`
}

// ApplyRequest asks the daemon to run a policy.
type ApplyRequest struct {
	PolicyRequest
	// ConfirmTimeout, when positive, arms a rollback unless confirmed.
	ConfirmTimeout Duration `json:"confirmTimeout,omitempty"`
}

// ReloadRequest is the optional body of a reload.
type ReloadRequest struct {
	// FromFiles returns to the policy files even when the running policy
	// was given by `edgefwctl apply` and the files did not change.
	FromFiles bool `json:"fromFiles,omitempty"`
}

// RemoveRequest asks the daemon to delete the table; Confirm must be
// exactly "remove-firewall" so that it is never an accident.
type RemoveRequest struct {
	Confirm string `json:"confirm"`
}

// RemoveConfirmation is the word a RemoveRequest must carry.
const RemoveConfirmation = "remove-firewall"

// ApplyResponse is the outcome of reload, apply, confirm and rollback.
type ApplyResponse struct {
	OK      bool       `json:"ok"`
	Error   string     `json:"error,omitempty"`
	Apply   *ApplyInfo `json:"apply,omitempty"`
	Pending *Pending   `json:"pending,omitempty"`
	Message string     `json:"message,omitempty"`
}

// Ruleset is the running ruleset rendered as nft text.
type Ruleset struct {
	Text string `json:"text"`
}

// DiffRequest asks how a policy differs from what the kernel holds; it
// travels as in an ApplyRequest, and nothing is applied.
type DiffRequest struct {
	PolicyRequest
}

// Diff compares a policy with table inet edgefw as the kernel holds it,
// drift included.
type Diff struct {
	// Kernel renders the table as nft text laid out like the policy's
	// ruleset (`edgefwctl plan`), so that the two compare line by line;
	// "" when the table does not exist. A rule that neither the policy
	// nor the running ruleset has is a comment naming its handle.
	Kernel string `json:"kernel"`
	// Changes are what applying the policy would write, one line per
	// object, as an apply reports them; empty when the kernel holds it.
	Changes []string `json:"changes"`
	// Messages is how many netlink messages the changes take.
	Messages int `json:"messages"`
}

// DropsView is the denied traffic of a period (GET PathDrops): per rule,
// the packets the kernel's counter counted, exactly, and the sources and
// destination ports of the logged sample, with its share. Rules that deny
// in the running ruleset are shown, and rules no longer in it that have
// a sample in the period; a rule asked for by name is shown whatever it
// does.
type DropsView struct {
	// From and To are the period covered: the one asked for, rounded out
	// to the buckets the daemon keeps (10 s, 1 min, 1 h, 1 day).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Rules are by packets counted, most first, then by name.
	Rules []RuleDrops `json:"rules"`
}

// RuleDrops is one rule's denied traffic in a period (see audit.RuleView
// for the fields it embeds), with what the running ruleset says of the
// rule: empty for a rule no longer in it.
type RuleDrops struct {
	audit.RuleView
	Direction string `json:"direction,omitempty"`
	Action    string `json:"action,omitempty"`
	// Mode is enforce, or audit for a rule that counts and logs what it
	// would deny and lets it through.
	Mode string `json:"mode,omitempty"`
}

// DropRecord is one flow of denied traffic as PathDrops answers it for
// older clients: a (rule, source, protocol, port) of the sample with its
// packets; First and Last are the period the sample covers.
type DropRecord struct {
	Rule     string    `json:"rule"`
	Source   string    `json:"source"`
	Protocol string    `json:"protocol"`
	Port     uint16    `json:"port"`
	Packets  uint64    `json:"packets"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
}

// DropRecords renders a view as PathDrops's records: each rule's
// heaviest flows, heaviest first.
func DropRecords(v DropsView) []DropRecord {
	out := []DropRecord{}
	for _, r := range v.Rules {
		for _, f := range r.TopFlows {
			out = append(out, DropRecord{Rule: r.Rule, Source: f.Source.String(), Protocol: f.Protocol.String(),
				Port: f.Port, Packets: f.Count, First: v.From, Last: v.To})
		}
	}
	slices.SortStableFunc(out, func(a, b DropRecord) int { return cmp.Compare(b.Packets, a.Packets) })
	return out
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Duration is a time.Duration that travels as a Go duration string.
type Duration time.Duration

// MarshalText renders the duration like "2m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}
