package policy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name rules of SPEC.md. Rule names become nftables counter names and
// metric label values, so they are kept to a small, quoting-free alphabet.
const (
	maxNameLen = 48
	// maxIfNameLen is IFNAMSIZ (16) less the terminating NUL.
	maxIfNameLen = 15
	// reservedPrefix starts the names of the implicit rules and counters.
	reservedPrefix = "edgefw-"
)

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

const nameAlphabet = "use lowercase letters, digits and -, starting with a letter"

// checkName returns why name cannot name a rule, set, tunnel or peer, or nil.
func checkName(name string, maxLen int) error {
	switch {
	case name == "":
		return fmt.Errorf("a name must not be empty; %s", nameAlphabet)
	case !namePattern.MatchString(name):
		return fmt.Errorf("%q is not a valid name; %s, like ssh-from-mgmt", name, nameAlphabet)
	case len(name) > maxLen:
		return fmt.Errorf("%q is %d characters long; at most %d are allowed", name, len(name), maxLen)
	case strings.HasPrefix(name, reservedPrefix):
		return fmt.Errorf("names beginning with %q are reserved for implicit rules; choose another name", reservedPrefix)
	}
	return nil
}

// parseCIDR parses a CIDR, or a bare address meaning a single host. It
// checks the syntax only: what a prefix of a policy must be is checkPrefix's.
func parseCIDR(s string) (netip.Prefix, error) {
	if addr, bits, ok := strings.Cut(s, "/"); ok {
		a, err := netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR; write an address and a prefix length, like 10.0.0.0/8 or 2001:db8::/32", s)
		}
		n, err := strconv.Atoi(bits)
		if err != nil || n < 0 || n > a.BitLen() || strconv.Itoa(n) != bits {
			return netip.Prefix{}, fmt.Errorf("%q has an invalid prefix length; it must be 0 to %d for %s", s, a.BitLen(), familyName(a))
		}
		return netip.PrefixFrom(a, n), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR or address; write an address and a prefix length, like 10.0.0.0/8 or 2001:db8::/32", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// checkInterface returns why name cannot name a network interface, or nil.
// The rules are the kernel's (dev_valid_name: at most 15 bytes, not . or ..,
// no /, : or whitespace), narrowed to printable ASCII without quotes and
// backslashes so that the name is safe to render in nft syntax. A trailing *
// matches every interface whose name starts with what precedes it, as in
// nftables' iifname "veth*".
func checkInterface(name string) error {
	const valid = "an interface name is 1 to 15 printable characters without /, :, quotes or spaces, optionally ending in * to match a prefix, like eth0 or veth*"
	base := strings.TrimSuffix(name, "*")
	switch {
	case name == "":
		return fmt.Errorf("an interface name must not be empty; %s", valid)
	case len(name) > maxIfNameLen:
		return fmt.Errorf("interface %q is longer than %d characters; %s", name, maxIfNameLen, valid)
	case base == "":
		return fmt.Errorf("interface \"*\" would match every interface; leave out the peer instead, or %s", valid)
	case base == "." || base == "..":
		return fmt.Errorf("interface %q is not a valid name; %s", name, valid)
	}
	for _, r := range base {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`/:"'\*`, r) {
			return fmt.Errorf("interface %q contains %q; %s", name, r, valid)
		}
	}
	return nil
}

// checkEndpoint returns why s is not a WireGuard endpoint HOST:PORT, or nil.
func checkEndpoint(s string) error {
	const valid = "write HOST:PORT or [IPV6]:PORT, like gw.example.com:51820 or [2001:db8::1]:51820"
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not a valid endpoint; %s", s, valid)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strconv.FormatUint(n, 10) != port {
		return fmt.Errorf("endpoint port %q is not valid; it must be 1 to 65535", port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("endpoint %q has an IPv6 zone, which WireGuard endpoints do not support; %s", s, valid)
		}
		return nil
	}
	if strings.HasPrefix(s, "[") || !validHostname(host) {
		return fmt.Errorf("endpoint host %q is neither an IP address nor a DNS name; %s", host, valid)
	}
	return nil
}

// validHostname reports whether h is a DNS name (RFC 1123 labels). A name
// whose last label is all digits is refused: it is a mistyped IPv4 address
// (RFC 3696 section 2), not a name.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// wireGuardKeyLen is the length of a Curve25519 key, and wireGuardKeyText the
// length of its base64 form, as wg(8) writes and reads keys.
const (
	wireGuardKeyLen  = 32
	wireGuardKeyText = 44
)

// parseKey decodes a base64 WireGuard key. It returns no error value on
// purpose: the message about a bad key must never contain the key.
func parseKey(s string) ([wireGuardKeyLen]byte, bool) {
	var key [wireGuardKeyLen]byte
	if len(s) != wireGuardKeyText {
		return key, false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != wireGuardKeyLen {
		return key, false
	}
	copy(key[:], b)
	return key, true
}

// setFileEntry is one CIDR read from a set file, or the reason it is invalid.
type setFileEntry struct {
	line, col int
	prefix    netip.Prefix
	err       error
}

// setFileEntries yields the entries of a set file: one CIDR or address a
// line, # to the end of a line is a comment, blank lines are ignored.
// It yields them one at a time because a set file may hold millions.
func setFileEntries(data []byte) iter.Seq[setFileEntry] {
	return func(yield func(setFileEntry) bool) {
		line := 0
		for text := range bytes.Lines(data) {
			line++
			if i := bytes.IndexByte(text, '#'); i >= 0 {
				text = text[:i]
			}
			field := bytes.TrimSpace(text)
			if len(field) == 0 {
				continue
			}
			start := len(text) - len(bytes.TrimLeftFunc(text, unicode.IsSpace))
			e := setFileEntry{line: line, col: utf8.RuneCount(text[:start]) + 1}
			if bytes.IndexFunc(field, unicode.IsSpace) >= 0 {
				fields := strings.Fields(string(field))
				second := bytes.Index(text[start+len(fields[0]):], []byte(fields[1])) + start + len(fields[0])
				e.col = utf8.RuneCount(text[:second]) + 1
				e.err = fmt.Errorf("%q follows %q on the same line; write one CIDR a line", fields[1], fields[0])
			} else if e.prefix, e.err = parseCIDR(string(field)); e.err == nil {
				// Not split into fields: that allocated twice a line of
				// a list of millions.
				e.err = checkNetwork(e.prefix)
			}
			if !yield(e) {
				return
			}
		}
	}
}
