package integration

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// The package tests build the .deb and the .rpm with `make package`, once
// per run of the test binary, check what they hold, lint the .deb, and
// install the .deb for real twice, each time in a throw-away lab machine
// and never on the host (checkHostUnchanged): in one without systemd
// (bootWithoutSystemd), where nothing may start and nothing of the firewall
// may change (install, an upgrade that keeps a locally edited conffile, a
// purge that leaves nothing); and in one booted with systemd (bootSystemd),
// where the daemon must start, survive an upgrade without its table ever
// leaving the kernel, stop on remove leaving the table, and lose the table
// on purge.

// pkgArchs are the architectures `make package` builds here; the other one
// is a cross build, checked for its architecture and static linking.
var pkgArchs = []string{"amd64", "arm64"}

// pkgRPMArch is how rpm names a Go architecture.
var pkgRPMArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// pkgELFMachine is the ELF machine of a Go architecture.
var pkgELFMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// pkgBuildTimeout bounds one `make package`: a cold cross build of two
// programs for two architectures takes a minute or two on two cores.
const pkgBuildTimeout = 10 * time.Minute

// pkgSet is one run of `make package`.
type pkgSet struct {
	Version string
	Deb     map[string]string // by Go architecture
	RPM     map[string]string // by Go architecture
}

// pkgBuilt holds the packages built once per run of the test binary: those
// of `make package`, and a .deb of a higher version for upgrades.
var pkgBuilt struct {
	once    sync.Once
	set     *pkgSet
	upgrade *pkgSet
	err     error
}

// pkgBuild returns the packages, building them on the first call. It
// skips the test when the tools to build or inspect packages are missing.
func pkgBuild(t *testing.T) (set, upgrade *pkgSet) {
	t.Helper()
	netnstest.RequireTool(t, "make", "dpkg-deb", "rpm")
	b := &pkgBuilt
	b.once.Do(func() {
		// Inside the directory of this run's binaries, which the next
		// run removes once this test binary is gone.
		removeStaleBinaryDirs()
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		base := filepath.Join(os.TempDir(), builtBinariesPrefix+strconv.Itoa(os.Getpid()), "packages")
		if b.set, b.err = pkgMake(root, filepath.Join(base, "release"), strings.Join(pkgArchs, " "), ""); b.err != nil {
			return
		}
		// Higher than any version the first build can have: its own
		// version with a suffix that sorts after it in dpkg and rpm.
		b.upgrade, b.err = pkgMake(root, filepath.Join(base, "upgrade"), runtime.GOARCH, b.set.Version+"+pkgtest1")
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.set, b.upgrade
}

// pkgMake runs `make package` into dist with the given architectures and,
// unless empty, VERSION, and returns the packages it made.
func pkgMake(root, dist, archs, version string) (*pkgSet, error) {
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return nil, err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pkgBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "package")
	cmd.Dir = root
	// Under `make test`, the outer make's MAKEFLAGS would hand its
	// command-line variables (VERSION=…) to this make; without VERSION,
	// the version comes from git, as in a release build.
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VERSION":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DIST="+dist, "GO="+goTool, "ARCHS="+archs)
	if version != "" {
		cmd.Env = append(cmd.Env, "VERSION="+version)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("make package (ARCHS=%q VERSION=%q): %v\n%s", archs, version, err, out)
	}
	// The build tree is not needed any more; the packages are.
	if err := os.RemoveAll(filepath.Join(dist, "build")); err != nil {
		return nil, err
	}
	set := &pkgSet{Deb: map[string]string{}, RPM: map[string]string{}}
	for _, arch := range strings.Fields(archs) {
		debs, _ := filepath.Glob(filepath.Join(dist, "edgefw_*_"+arch+".deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("make package: want one edgefw_VERSION_%s.deb in %s, found %q\n%s", arch, dist, debs, out)
		}
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(debs[0]), "edgefw_"), "_"+arch+".deb")
		if set.Version != "" && v != set.Version {
			return nil, fmt.Errorf("make package: versions %s and %s in one build", set.Version, v)
		}
		set.Version = v
		set.Deb[arch] = debs[0]
		set.RPM[arch] = filepath.Join(dist, "edgefw-"+v+"."+pkgRPMArch[arch]+".rpm")
		if _, err := os.Stat(set.RPM[arch]); err != nil {
			return nil, fmt.Errorf("make package: %w\n%s", err, out)
		}
	}
	fmt.Fprintf(os.Stderr, "package_test: make package ARCHS=%q took %v\n", archs, time.Since(start).Round(time.Second))
	return set, nil
}

// pkgVersionRE is what build.sh may make of a git describe or VERSION: a
// version valid for dpkg and for rpm (no '-').
var pkgVersionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// pkgFiles are the files and directories both packages install, in the
// .deb's layout, with their modes; "" is any. Where the .rpm differs, see
// pkgRPMPath.
var pkgFiles = map[string]string{
	"/usr/bin/edgefwd":                                    "-rwxr-xr-x",
	"/usr/bin/edgefwctl":                                  "-rwxr-xr-x",
	"/lib/systemd/system/edgefwd.service":                 "-rw-r--r--",
	"/usr/lib/sysusers.d/edgefw.conf":                     "-rw-r--r--",
	"/usr/lib/tmpfiles.d/edgefw.conf":                     "-rw-r--r--",
	"/etc/edgefw":                                         "drwxr-x---",
	"/etc/edgefw/policy.yaml":                             "-rw-r-----",
	"/etc/edgefw/policy.d":                                "drwxr-x---",
	"/etc/edgefw/keys":                                    "drwx------",
	"/usr/share/edgefw/examples/edge-default.yaml":        "-rw-r--r--",
	"/usr/share/edgefw/examples/micro-segmentation.yaml":  "-rw-r--r--",
	"/usr/share/edgefw/examples/nodeports-blocklist.yaml": "-rw-r--r--",
	"/usr/share/edgefw/examples/blocklist.txt":            "-rw-r--r--",
	"/usr/share/edgefw/monitoring/edgefw-rules.yml":       "-rw-r--r--",
	"/usr/share/edgefw/monitoring/edgefw-rules.test.yml":  "-rw-r--r--",
	"/usr/share/edgefw/monitoring/edgefw-dashboard.json":  "-rw-r--r--",
	"/usr/share/bash-completion/completions/edgefwctl":    "-rw-r--r--",
	"/usr/share/zsh/vendor-completions/_edgefwctl":        "-rw-r--r--",
	"/usr/share/fish/vendor_completions.d/edgefwctl.fish": "-rw-r--r--",
	"/usr/share/man/man8/edgefwd.8.gz":                    "-rw-r--r--",
	"/usr/share/man/man8/edgefwctl.8.gz":                  "-rw-r--r--",
	"/usr/share/man/man8/edgefwctl-validate.8.gz":         "-rw-r--r--",
	"/usr/share/man/man8/edgefwctl-apply.8.gz":            "-rw-r--r--",
	"/usr/share/doc/edgefw/runbook.md":                    "-rw-r--r--",
}

// pkgOwners are the owners of pkgFiles that are not root:root, given by
// name in both packages and resolved when they are unpacked.
var pkgOwners = map[string]string{
	"/etc/edgefw":             "root edgefw",
	"/etc/edgefw/policy.d":    "root edgefw",
	"/etc/edgefw/keys":        "edgefw edgefw",
	"/etc/edgefw/policy.yaml": "root edgefw",
}

// pkgOwner is the owner of a file of pkgFiles, "USER GROUP".
func pkgOwner(path string) string {
	if owner, ok := pkgOwners[path]; ok {
		return owner
	}
	return "root root"
}

// pkgDebOnly and pkgRPMOnly are the files of one package only.
var (
	pkgDebOnly = []string{
		"/usr/share/doc/edgefw/copyright",
		"/usr/share/doc/edgefw/changelog.gz",
		"/usr/share/doc/edgefw/third-party-licenses.txt.gz",
		"/usr/share/lintian/overrides/edgefw",
	}
	pkgRPMOnly = []string{
		"/usr/share/licenses/edgefw/LICENSE",
		"/usr/share/licenses/edgefw/third-party-licenses.txt",
	}
)

// pkgRPMPath is where the .rpm installs what the .deb installs at path.
func pkgRPMPath(path string) string {
	switch path {
	case "/lib/systemd/system/edgefwd.service":
		return "/usr/lib/systemd/system/edgefwd.service"
	case "/usr/share/zsh/vendor-completions/_edgefwctl":
		return "/usr/share/zsh/site-functions/_edgefwctl"
	}
	return path
}

// pkgAllowedPrefixes are the only places the packages may put anything.
var pkgAllowedPrefixes = []string{
	"/etc/edgefw", "/usr/bin/edgefw", "/lib/systemd/system/edgefwd.service",
	"/usr/lib/systemd/system/edgefwd.service", "/usr/lib/sysusers.d/edgefw.conf",
	"/usr/lib/tmpfiles.d/edgefw.conf", "/usr/share/edgefw", "/usr/share/doc/edgefw",
	"/usr/share/licenses/edgefw", "/usr/share/man/man8/edgefw",
	"/usr/share/bash-completion/completions/edgefwctl", "/usr/share/zsh/",
	"/usr/share/fish/vendor_completions.d/edgefwctl.fish", "/usr/share/lintian/overrides/edgefw",
}

func TestPackageDeb(t *testing.T) {
	set, _ := pkgBuild(t)
	if !pkgVersionRE.MatchString(set.Version) {
		t.Errorf("version %q is not valid for both dpkg and rpm", set.Version)
	}
	t.Logf("version %s", set.Version)
	for _, arch := range pkgArchs {
		t.Run(arch, func(t *testing.T) {
			deb := set.Deb[arch]
			pkgLogSize(t, deb)
			control := pkgRun(t, "dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends", "Pre-Depends", "Recommends")
			for _, want := range []string{"Package: edgefw\n", "Version: " + set.Version + "\n", "Architecture: " + arch + "\n"} {
				if !strings.Contains(control, want) {
					t.Errorf("control has no %q:\n%s", want, control)
				}
			}
			// Static binaries: no library, not even libc.
			if strings.Contains(control, "Depends:") {
				t.Errorf("the .deb depends on something:\n%s", control)
			}
			if m := regexp.MustCompile(`(?m)^Recommends: (.*)$`).FindStringSubmatch(control); m == nil ||
				!slices.Equal(pkgSplitList(m[1]), []string{"nftables", "wireguard-tools"}) {
				t.Errorf("Recommends: want nftables, wireguard-tools:\n%s", control)
			}

			listing := pkgDebListing(t, deb)
			want := map[string]string{}
			for path, mode := range pkgFiles {
				want[path] = mode
			}
			for _, path := range pkgDebOnly {
				want[path] = "-rw-r--r--"
			}
			for path, mode := range want {
				got, ok := listing[path]
				if !ok {
					t.Errorf("the .deb has no %s", path)
					continue
				}
				if owner := strings.Replace(pkgOwner(path), " ", "/", 1); got.mode != mode || got.owner != owner {
					t.Errorf("%s: %s %s, want %s %s", path, got.mode, got.owner, mode, owner)
				}
			}
			for path := range listing {
				if !pkgAllowed(path) {
					t.Errorf("the .deb installs %s, outside edgefw's places", path)
				}
			}

			dir := t.TempDir()
			pkgRun(t, "dpkg-deb", "--extract", deb, dir)
			pkgRun(t, "dpkg-deb", "--control", deb, filepath.Join(dir, "DEBIAN"))
			for src, dst := range map[string]string{
				"systemd/edgefwd.service":              "lib/systemd/system/edgefwd.service",
				"systemd/edgefw.sysusers":              "usr/lib/sysusers.d/edgefw.conf",
				"systemd/edgefw.tmpfiles":              "usr/lib/tmpfiles.d/edgefw.conf",
				"packaging/examples/edge-default.yaml": "etc/edgefw/policy.yaml",
				"packaging/examples/blocklist.txt":     "usr/share/edgefw/examples/blocklist.txt",
			} {
				pkgSameFile(t, systemdRepoFile(t, src), filepath.Join(dir, dst))
			}
			for _, bin := range []string{"edgefwd", "edgefwctl"} {
				pkgCheckStatic(t, filepath.Join(dir, "usr/bin", bin), pkgELFMachine[arch])
			}
			if arch == runtime.GOARCH {
				out := pkgRun(t, filepath.Join(dir, "usr/bin/edgefwctl"), "--socket", filepath.Join(dir, "none.sock"), "version")
				if !strings.HasPrefix(out, "edgefwctl "+set.Version+"\n") {
					t.Errorf("edgefwctl version: %q, want edgefwctl %s", out, set.Version)
				}
				out = pkgRun(t, filepath.Join(dir, "usr/bin/edgefwd"), "--version")
				if !strings.HasPrefix(out, "edgefwd "+set.Version+" (") {
					t.Errorf("edgefwd --version: %q, want edgefwd %s", out, set.Version)
				}
			}

			conffiles, err := os.ReadFile(filepath.Join(dir, "DEBIAN/conffiles"))
			if err != nil || string(conffiles) != "/etc/edgefw/policy.yaml\n" {
				t.Errorf("conffiles: %q (%v), want only /etc/edgefw/policy.yaml", conffiles, err)
			}
			for _, script := range []string{"preinst", "postinst", "prerm", "postrm"} {
				pkgCheckScript(t, filepath.Join(dir, "DEBIAN", script))
			}
			copyright, err := os.ReadFile(filepath.Join(dir, "usr/share/doc/edgefw/copyright"))
			if err != nil || !bytes.HasPrefix(copyright, []byte("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")) {
				t.Errorf("copyright is not machine-readable (DEP-5): %v\n%s", err, copyright)
			}
		})
	}
}

func TestPackageRPM(t *testing.T) {
	set, _ := pkgBuild(t)
	checkHostUnchanged(t)
	// rpm opens, and creates, its database even to read a package file;
	// Debian's keeps it in ~/.rpmdb. Queries use one of their own.
	db := t.TempDir()
	query := func(t *testing.T, args ...string) string {
		t.Helper()
		return pkgRun(t, "rpm", append([]string{"--dbpath", db}, args...)...)
	}
	for _, arch := range pkgArchs {
		t.Run(arch, func(t *testing.T) {
			rpm := set.RPM[arch]
			pkgLogSize(t, rpm)
			info := query(t, "-qp", "--qf", `%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}\n`, rpm)
			if want := fmt.Sprintf("edgefw %s 1 %s Apache-2.0\n", set.Version, pkgRPMArch[arch]); info != want {
				t.Errorf("rpm -qp: %q, want %q", info, want)
			}

			// rpm -qplv: MODE LINKS OWNER GROUP SIZE MONTH DAY TIME PATH
			listing := map[string][]string{}
			for _, line := range strings.Split(strings.TrimSpace(query(t, "-qplv", rpm)), "\n") {
				f := strings.Fields(line)
				if len(f) < 9 {
					t.Fatalf("rpm -qplv: %q", line)
				}
				listing[f[8]] = f
			}
			paths := query(t, "-qpl", rpm)
			for debPath, mode := range pkgFiles {
				path := pkgRPMPath(debPath)
				f, ok := listing[path]
				if !ok {
					t.Errorf("the .rpm has no %s:\n%s", path, paths)
					continue
				}
				if f[0] != mode || f[2]+" "+f[3] != pkgOwner(debPath) {
					t.Errorf("%s: %s %s %s, want %s %s", path, f[0], f[2], f[3], mode, pkgOwner(debPath))
				}
			}
			for _, path := range pkgRPMOnly {
				if _, ok := listing[path]; !ok {
					t.Errorf("the .rpm has no %s", path)
				}
			}
			for path := range listing {
				if !pkgAllowed(path) {
					t.Errorf("the .rpm installs %s, outside edgefw's places", path)
				}
			}
			for _, path := range []string{"/lib/systemd/system/edgefwd.service", "/usr/share/zsh/vendor-completions/_edgefwctl", "/usr/share/doc/edgefw/copyright"} {
				if _, ok := listing[path]; ok {
					t.Errorf("the .rpm has the Debian path %s", path)
				}
			}

			if got := query(t, "-qpc", rpm); got != "/etc/edgefw/policy.yaml\n" {
				t.Errorf("rpm -qpc: %q, want only /etc/edgefw/policy.yaml", got)
			}
			// c: %config, n: noreplace (an upgrade writes .rpmnew).
			flags := query(t, "-qp", "--qf", `[%{FILENAMES} %{FILEFLAGS:fflags}\n]`, rpm)
			if !strings.Contains(flags, "/etc/edgefw/policy.yaml cn\n") {
				t.Errorf("policy.yaml is not %%config(noreplace):\n%s", flags)
			}
			if got := query(t, "-qpL", rpm); !strings.Contains(got, "/usr/share/licenses/edgefw/LICENSE\n") {
				t.Errorf("rpm -qpL (licence files): %q", got)
			}
			if got := pkgSplitList(query(t, "-qp", "--recommends", rpm)); !slices.Equal(got, []string{"nftables", "wireguard-tools"}) {
				t.Errorf("rpm --recommends: %q, want nftables, wireguard-tools", got)
			}
			if got := query(t, "-qp", "--requires", rpm); strings.Contains(got, "lib") {
				t.Errorf("rpm --requires names a library: %q", got)
			}

			scripts := query(t, "-qp", "--scripts", rpm)
			for _, want := range []string{
				"preinstall scriptlet (using /bin/sh):",
				"postinstall scriptlet (using /bin/sh):",
				"preuninstall scriptlet (using /bin/sh):",
				"postuninstall scriptlet (using /bin/sh):",
				"systemd-sysusers --replace=/usr/lib/sysusers.d/edgefw.conf -",
				"useradd --system",
				"systemctl --quiet enable \"$unit\"",
				"[ -d /run/systemd/system ]",
				"edgefwctl validate \"$policy\"",
				"systemctl try-restart \"$unit\"",
				"systemctl stop \"$unit\"",
				"systemctl --quiet --no-reload disable \"$unit\"",
			} {
				if !strings.Contains(scripts, want) {
					t.Errorf("rpm --scripts: no %q", want)
				}
			}
			// The ruleset outlives an erase (rpm has no purge): only the
			// purge branch of the shared postrm may run nft.
			for _, line := range strings.Split(scripts, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "nft delete") && !strings.Contains(line, "\t\t\tnft delete table inet edgefw ||") {
					t.Errorf("a scriptlet deletes the table outside the deb purge: %q", line)
				}
			}
		})
	}
}

// TestPackageScripts checks the maintainer scripts as sources: POSIX sh,
// set -e, and the sysusers line preinst carries is the packaged file's.
func TestPackageScripts(t *testing.T) {
	for _, name := range []string{"preinstall.sh", "postinstall.sh", "preremove.sh", "postremove.sh"} {
		pkgCheckScript(t, systemdRepoFile(t, "packaging/scripts/"+name))
	}
	sysusers, err := os.ReadFile(systemdRepoFile(t, "systemd/edgefw.sysusers"))
	if err != nil {
		t.Fatal(err)
	}
	preinst, err := os.ReadFile(systemdRepoFile(t, "packaging/scripts/preinstall.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(sysusers), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(string(preinst), "sysusers_line='"+line+"'") {
			t.Errorf("preinstall.sh does not carry the line of systemd/edgefw.sysusers: %s", line)
		}
	}
}

func TestPackageLintian(t *testing.T) {
	netnstest.RequireTool(t, "lintian")
	set, _ := pkgBuild(t)
	args := []string{"--tag-display-limit", "0", "--display-info", "--show-overrides"}
	for _, arch := range pkgArchs {
		args = append(args, set.Deb[arch])
	}
	start := time.Now()
	// Exit status 2 means tags of the --fail-on level (error), which
	// lintian counts even when overridden if --show-overrides shows them:
	// the E: lines decide. Any other failure is lintian's own.
	out, runErr := exec.Command("lintian", args...).CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) && exitErr.ExitCode() == 2 {
		runErr = nil
	}
	// E: error, W: warning, I: info, P: pedantic, O: overridden (each
	// override's reason follows as N: lines, left out here).
	counts := map[string]int{}
	var tags, errs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 3 || line[1:3] != ": " || line[0] == 'N' {
			continue
		}
		counts[line[:1]]++
		tags = append(tags, line)
		if line[0] == 'E' {
			errs = append(errs, line)
		}
	}
	t.Logf("lintian (%v): %d errors, %d warnings, %d info, %d overridden\n%s",
		time.Since(start).Round(time.Second), counts["E"], counts["W"], counts["I"], counts["O"], strings.Join(tags, "\n"))
	if runErr != nil {
		t.Fatalf("lintian: %v\n%s", runErr, out)
	}
	if len(errs) > 0 {
		t.Errorf("lintian reports errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestPackageInstallWithoutSystemd installs the .deb in a lab machine that
// runs no systemd (bootWithoutSystemd), as containers, chroots and image
// builds do: the scripts must neither start the daemon nor touch the
// firewall, and enable the unit for the next boot. Then an upgrade that
// keeps a locally edited conffile, and a purge that leaves nothing but the
// system user. Nothing reaches the host: dpkg writes to the lab's overlay.
func TestPackageInstallWithoutSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		netnstest.Unavailable(t, "installing a package needs root")
	}
	netnstest.RequireTool(t, "dpkg", "dpkg-query", "nft")
	set, upgrade := pkgBuild(t)
	deb, ok := set.Deb[runtime.GOARCH]
	if !ok {
		netnstest.Unavailable(t, "no package for %s", runtime.GOARCH)
	}
	if exec.Command("dpkg", "--compare-versions", upgrade.Version, "gt", set.Version).Run() != nil {
		t.Fatalf("upgrade version %s is not higher than %s", upgrade.Version, set.Version)
	}
	checkHostUnchanged(t)
	lab := bootWithoutSystemd(t)
	pkgForgetEdgefw(t, lab)
	lab.WriteFile(t, "/tmp/edgefw.deb", pkgReadFileBytes(t, deb), 0o644)
	lab.WriteFile(t, "/tmp/edgefw-upgrade.deb", pkgReadFileBytes(t, upgrade.Deb[runtime.GOARCH]), 0o644)
	// The lab has a network namespace of its own: its ruleset is empty,
	// and the scripts must keep it so.
	rulesetBefore := lab.MustExec(t, "nft", "list", "ruleset")
	if rulesetBefore != "" {
		t.Fatalf("the lab's ruleset is not empty:\n%s", rulesetBefore)
	}
	notStarted := func(when string) {
		t.Helper()
		if lab.Exists(t, "/run/edgefw/edgefwd.sock") {
			t.Errorf("%s: edgefwd was started (its control socket exists)", when)
		}
		if out, err := lab.Exec("pgrep", "-a", "-x", "edgefwd"); err == nil {
			t.Errorf("%s: edgefwd runs:\n%s", when, out)
		}
		if out := lab.MustExec(t, "nft", "list", "ruleset"); out != rulesetBefore {
			t.Errorf("%s: the firewall changed:\n%s", when, out)
		}
	}

	// dpkg -i in two steps: after the unpack, before postinst runs, the
	// directories already have their owners, resolved by name.
	out := lab.MustExec(t, "sh", "-c", "dpkg --unpack /tmp/edgefw.deb 2>&1")
	for _, path := range []string{"/etc/edgefw", "/etc/edgefw/policy.d", "/etc/edgefw/keys"} {
		if got := strings.TrimSpace(lab.MustExec(t, "stat", "-c", "%U %G", path)); got != pkgOwner(path) {
			t.Errorf("unpacked %s: %s, want %s", path, got, pkgOwner(path))
		}
	}
	out += lab.MustExec(t, "sh", "-c", "dpkg --configure edgefw 2>&1")
	t.Logf("lab: dpkg -i (--unpack, --configure):\n%s", out)
	notStarted("after dpkg -i")
	if !lab.Exists(t, "/etc/systemd/system/sysinit.target.wants/edgefwd.service") {
		t.Error("the first install did not enable edgefwd.service")
	}
	if got := lab.MustExec(t, "/usr/bin/edgefwctl", "version"); !strings.HasPrefix(got, "edgefwctl "+set.Version+"\n") {
		t.Errorf("edgefwctl version: %q, want edgefwctl %s", got, set.Version)
	}
	lab.MustExec(t, "/usr/bin/edgefwctl", "validate", "/etc/edgefw/policy.yaml")
	pkgCheckOwnership(t, lab.MustExec)

	// A local edit: a comment and a rule.
	edited := lab.MustExec(t, "cat", "/etc/edgefw/policy.yaml") + `  # Local edit (package test): must survive upgrades.
  - name: package-test-local
    direction: input
    ports: [{protocol: tcp, port: 9999}]
    action: accept
`
	// WriteFile keeps the file's owner (root:edgefw).
	lab.WriteFile(t, "/etc/edgefw/policy.yaml", []byte(edited), 0o640)
	if got := lab.MustExec(t, "/usr/bin/edgefwctl", "validate", "/etc/edgefw/policy.yaml"); !strings.Contains(got, "valid (2 rules") {
		t.Errorf("the edited policy: %q, want 2 rules", got)
	}

	out = lab.MustExec(t, "sh", "-c", "dpkg --force-confold -i /tmp/edgefw-upgrade.deb 2>&1")
	t.Logf("lab: dpkg --force-confold -i (upgrade):\n%s", out)
	notStarted("after the upgrade")
	if got := lab.MustExec(t, "/usr/bin/edgefwctl", "version"); !strings.HasPrefix(got, "edgefwctl "+upgrade.Version+"\n") {
		t.Errorf("after the upgrade, edgefwctl version: %q, want edgefwctl %s", got, upgrade.Version)
	}
	if got := lab.MustExec(t, "cat", "/etc/edgefw/policy.yaml"); got != edited {
		t.Errorf("the upgrade changed the edited /etc/edgefw/policy.yaml:\n%s", got)
	}
	pkgCheckOwnership(t, lab.MustExec)

	out = lab.MustExec(t, "sh", "-c", "dpkg --purge edgefw 2>&1")
	t.Logf("lab: dpkg --purge:\n%s", out)
	notStarted("after the purge")
	if out, err := lab.Exec("dpkg", "-L", "edgefw"); err == nil {
		t.Errorf("dpkg -L edgefw succeeds after the purge:\n%s", out)
	}
	for _, path := range []string{
		"/etc/edgefw", "/var/lib/edgefw", "/run/edgefw", "/usr/bin/edgefwd", "/usr/bin/edgefwctl",
		"/usr/share/edgefw", "/usr/share/doc/edgefw", "/lib/systemd/system/edgefwd.service",
		"/usr/lib/systemd/system/edgefwd.service", "/usr/lib/sysusers.d/edgefw.conf",
		"/usr/lib/tmpfiles.d/edgefw.conf", "/usr/share/man/man8/edgefwd.8.gz",
		"/usr/share/bash-completion/completions/edgefwctl",
		"/etc/systemd/system/sysinit.target.wants/edgefwd.service",
	} {
		if lab.Exists(t, path) {
			t.Errorf("%s is left after the purge", path)
		}
	}
	// Debian policy: system users stay after a purge.
	if _, err := lab.Exec("getent", "passwd", "edgefw"); err != nil {
		t.Error("the purge removed user edgefw; system users stay (Debian policy 9.2.2)")
	}
}

// pkgForgetEdgefw makes the lab a machine that never had edgefw, whatever
// the host it is laid over has: no package, no configuration or state, no
// user or group. Only the lab's overlay changes.
func pkgForgetEdgefw(t *testing.T, lab *systemdLab) {
	t.Helper()
	if status, err := lab.Exec("dpkg-query", "-W", "-f", "${db:Status-Status}", "edgefw"); err == nil && status != "not-installed" {
		t.Logf("the host has edgefw (%s): purged in the lab", status)
		lab.MustExec(t, "dpkg", "--purge", "edgefw")
	}
	lab.MustExec(t, "rm", "-rf", "/etc/edgefw", "/var/lib/edgefw", "/run/edgefw", "/run/edgefw.reinstall")
	if _, err := lab.Exec("getent", "passwd", "edgefw"); err == nil {
		lab.MustExec(t, "userdel", "edgefw")
	}
	if _, err := lab.Exec("getent", "group", "edgefw"); err == nil {
		lab.MustExec(t, "groupdel", "edgefw")
	}
}

// pkgCheckOwnership checks what postinst sets up in a lab (run runs a
// command there): the user, and the owners and modes of
// systemd/edgefw.tmpfiles and of the policy.
func pkgCheckOwnership(t *testing.T, run func(t testing.TB, args ...string) string) {
	t.Helper()
	passwd := strings.TrimSpace(run(t, "getent", "passwd", "edgefw"))
	if f := strings.Split(passwd, ":"); len(f) != 7 || f[5] != "/var/lib/edgefw" || f[6] != "/usr/sbin/nologin" {
		t.Errorf("user edgefw: %q, want home /var/lib/edgefw and shell /usr/sbin/nologin", passwd)
	}
	for path, want := range map[string]string{
		"/etc/edgefw":             "root edgefw 750",
		"/etc/edgefw/policy.d":    "root edgefw 750",
		"/etc/edgefw/keys":        "edgefw edgefw 700",
		"/etc/edgefw/policy.yaml": "root edgefw 640",
	} {
		if got := strings.TrimSpace(run(t, "stat", "-c", "%U %G %a", path)); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}

// TestPackageUnderSystemd installs the .deb in a systemd lab, where
// systemd is PID 1: the daemon starts, an upgrade restarts it without the
// table ever leaving the kernel, a remove stops it and leaves the table,
// and a purge removes the table. Nothing reaches the host: dpkg writes to
// the lab's overlay, the daemon programs the lab's network namespace.
func TestPackageUnderSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		netnstest.Unavailable(t, "booting systemd needs root")
	}
	netnstest.RequireTool(t, "nft")
	set, upgrade := pkgBuild(t)
	deb, ok := set.Deb[runtime.GOARCH]
	if !ok {
		netnstest.Unavailable(t, "no package for %s", runtime.GOARCH)
	}
	// The lab must leave no trace on the host: checked after it is gone.
	checkHostUnchanged(t)
	lab := bootSystemd(t)
	pkgForgetEdgefw(t, lab)
	defer func() {
		if t.Failed() {
			out, _ := lab.Exec("journalctl", "--no-pager", "-o", "short-monotonic", "-u", "edgefwd.service")
			t.Logf("journal of edgefwd.service:\n%s", out)
		}
	}()
	lab.WriteFile(t, "/tmp/edgefw.deb", pkgReadFileBytes(t, deb), 0o644)
	lab.WriteFile(t, "/tmp/edgefw-upgrade.deb", pkgReadFileBytes(t, upgrade.Deb[runtime.GOARCH]), 0o644)

	out := lab.MustExec(t, "sh", "-c", "dpkg -i /tmp/edgefw.deb 2>&1")
	t.Logf("lab: dpkg -i:\n%s", out)
	if got := strings.TrimSpace(lab.MustExec(t, "systemctl", "is-active", "edgefwd.service")); got != "active" {
		t.Fatalf("after dpkg -i: edgefwd.service is %s, want active", got)
	}
	if got := strings.TrimSpace(lab.MustExec(t, "systemctl", "is-enabled", "edgefwd.service")); got != "enabled" {
		t.Errorf("after dpkg -i: edgefwd.service is %s, want enabled", got)
	}
	handle := pkgTableHandle(t, lab)
	pid := lab.MainPID(t, "edgefwd.service")
	if got := lab.MustExec(t, "edgefwctl", "version"); !strings.Contains(got, "edgefwd   "+set.Version) {
		t.Errorf("edgefwctl version (as root, through the socket): %q, want edgefwd %s", got, set.Version)
	}

	// Upgrade: try-restart. The new daemon adopts the table that the old
	// one left in the kernel: the same table (handle), never deleted.
	out = lab.MustExec(t, "sh", "-c", "dpkg --force-confold -i /tmp/edgefw-upgrade.deb 2>&1")
	t.Logf("lab: dpkg -i (upgrade):\n%s", out)
	lab.WaitActive(t, "edgefwd.service")
	if got := lab.MainPID(t, "edgefwd.service"); got == pid {
		t.Errorf("the upgrade did not restart edgefwd (main PID %d)", pid)
	}
	if got := pkgTableHandle(t, lab); got != handle {
		t.Errorf("the upgrade replaced table inet edgefw (handle %s, was %s): it was deleted on the way", got, handle)
	}
	if got := lab.MustExec(t, "edgefwctl", "version"); !strings.Contains(got, "edgefwd   "+upgrade.Version) {
		t.Errorf("after the upgrade, edgefwctl version: %q, want edgefwd %s", got, upgrade.Version)
	}

	// Remove: stopped, fail closed, configuration kept.
	out = lab.MustExec(t, "sh", "-c", "dpkg --remove edgefw 2>&1")
	t.Logf("lab: dpkg --remove:\n%s", out)
	if state, _ := lab.Exec("systemctl", "is-active", "edgefwd.service"); strings.TrimSpace(state) == "active" {
		t.Error("after dpkg --remove: edgefwd.service is still active")
	}
	if got := pkgTableHandle(t, lab); got != handle {
		t.Errorf("after dpkg --remove: table handle %s, was %s", got, handle)
	}
	lab.MustExec(t, "test", "-f", "/etc/edgefw/policy.yaml")
	lab.MustExec(t, "test", "-d", "/var/lib/edgefw")

	// Reinstall over the kept configuration: back as it was, enabled
	// and running, on the same table.
	out = lab.MustExec(t, "sh", "-c", "dpkg -i /tmp/edgefw-upgrade.deb 2>&1")
	t.Logf("lab: dpkg -i (reinstall):\n%s", out)
	lab.WaitActive(t, "edgefwd.service")
	if got := pkgTableHandle(t, lab); got != handle {
		t.Errorf("after the reinstall: table handle %s, was %s", got, handle)
	}
	lab.MustExec(t, "dpkg", "--remove", "edgefw")

	// Purge: the table, the configuration, the state go.
	out = lab.MustExec(t, "sh", "-c", "dpkg --purge edgefw 2>&1")
	t.Logf("lab: dpkg --purge:\n%s", out)
	if out, err := lab.Exec("nft", "list", "table", "inet", "edgefw"); err == nil {
		t.Errorf("after dpkg --purge: table inet edgefw is still there:\n%s", out)
	}
	for _, path := range []string{"/etc/edgefw", "/var/lib/edgefw", "/run/edgefw", "/usr/bin/edgefwd", "/etc/systemd/system/sysinit.target.wants/edgefwd.service"} {
		if _, err := lab.Exec("test", "!", "-e", path, "-a", "!", "-L", path); err != nil {
			t.Errorf("after dpkg --purge: %s is left", path)
		}
	}
	if state, _ := lab.Exec("systemctl", "is-active", "edgefwd.service"); strings.TrimSpace(state) == "active" {
		t.Error("after dpkg --purge: edgefwd.service is active")
	}

	t.Run("without systemd-sysusers and systemd-tmpfiles", func(t *testing.T) {
		// Minimal images may lack both: the scripts fall back to
		// groupadd/useradd and to chown/chmod. The user the first
		// install made is removed first, as if it never existed.
		lab.MustExec(t, "userdel", "edgefw")
		lab.Exec("groupdel", "edgefw") // gone with the user where USERGROUPS_ENAB is set
		for _, tool := range []string{"systemd-sysusers", "systemd-tmpfiles"} {
			path := strings.TrimSpace(lab.MustExec(t, "sh", "-c", "command -v "+tool))
			lab.MustExec(t, "mv", path, path+".hidden")
			defer lab.MustExec(t, "mv", path+".hidden", path)
		}
		out := lab.MustExec(t, "sh", "-c", "dpkg -i /tmp/edgefw.deb 2>&1")
		t.Logf("lab: dpkg -i:\n%s", out)
		pkgCheckOwnership(t, lab.MustExec)
		lab.WaitActive(t, "edgefwd.service")
		lab.MustExec(t, "nft", "list", "table", "inet", "edgefw")
		lab.MustExec(t, "dpkg", "--purge", "edgefw")
		if out, err := lab.Exec("nft", "list", "table", "inet", "edgefw"); err == nil {
			t.Errorf("after dpkg --purge: table inet edgefw is still there:\n%s", out)
		}
	})

	t.Run("invalid policy: enabled, not started", func(t *testing.T) {
		// A policy that configuration management put there first.
		lab.WriteFile(t, "/etc/edgefw/policy.yaml", []byte("version: 1\nrulez: []\n"), 0o640)
		out, err := lab.Exec("sh", "-c", "dpkg --force-confold -i /tmp/edgefw.deb 2>&1")
		t.Logf("lab: dpkg -i:\n%s", out)
		if err != nil {
			t.Fatalf("an invalid policy failed the installation: %v", err)
		}
		if !strings.Contains(out, "/etc/edgefw/policy.yaml is not valid") {
			t.Error("dpkg -i did not say that the policy is invalid")
		}
		if state, _ := lab.Exec("systemctl", "is-active", "edgefwd.service"); strings.TrimSpace(state) == "active" {
			t.Error("edgefwd was started with an invalid policy")
		}
		if got := strings.TrimSpace(lab.MustExec(t, "systemctl", "is-enabled", "edgefwd.service")); got != "enabled" {
			t.Errorf("edgefwd.service is %s, want enabled", got)
		}
		lab.MustExec(t, "cp", "/usr/share/edgefw/examples/edge-default.yaml", "/etc/edgefw/policy.yaml")
		lab.MustExec(t, "systemctl", "start", "edgefwd.service")
		lab.MustExec(t, "dpkg", "--purge", "edgefw")
	})

	t.Run("rpm", func(t *testing.T) {
		// The same scripts under rpm's calling convention (1 install,
		// 2 upgrade, 0 erase), installed by rpm itself; Debian's rpm
		// wants --force-debian, and --nodeps because its database
		// knows nothing of /bin/sh.
		rpmCmd := func(args ...string) string {
			t.Helper()
			out := lab.MustExec(t, "sh", "-c", "rpm --nodeps --force-debian "+strings.Join(args, " ")+" 2>&1")
			t.Logf("lab: rpm %s:\n%s", strings.Join(args, " "), out)
			return out
		}
		lab.WriteFile(t, "/tmp/edgefw.rpm", pkgReadFileBytes(t, set.RPM[runtime.GOARCH]), 0o644)
		lab.WriteFile(t, "/tmp/edgefw-upgrade.rpm", pkgReadFileBytes(t, upgrade.RPM[runtime.GOARCH]), 0o644)

		rpmCmd("-i", "/tmp/edgefw.rpm")
		lab.WaitActive(t, "edgefwd.service")
		if got := strings.TrimSpace(lab.MustExec(t, "systemctl", "is-enabled", "edgefwd.service")); got != "enabled" {
			t.Errorf("after rpm -i: edgefwd.service is %s, want enabled", got)
		}
		pkgCheckOwnership(t, lab.MustExec)
		handle := pkgTableHandle(t, lab)
		pid := lab.MainPID(t, "edgefwd.service")

		lab.MustExec(t, "sh", "-c", "echo '# local edit' >>/etc/edgefw/policy.yaml")
		edited := lab.MustExec(t, "cat", "/etc/edgefw/policy.yaml")
		rpmCmd("-U", "/tmp/edgefw-upgrade.rpm")
		lab.WaitActive(t, "edgefwd.service")
		if got := lab.MainPID(t, "edgefwd.service"); got == pid {
			t.Errorf("rpm -U did not restart edgefwd (main PID %d)", pid)
		}
		if got := pkgTableHandle(t, lab); got != handle {
			t.Errorf("rpm -U replaced table inet edgefw (handle %s, was %s)", got, handle)
		}
		if got := lab.MustExec(t, "cat", "/etc/edgefw/policy.yaml"); got != edited {
			t.Errorf("rpm -U changed the edited policy:\n%s", got)
		}

		// Erase: stopped and disabled; the ruleset and a changed
		// policy (as .rpmsave) stay.
		rpmCmd("-e", "edgefw")
		if state, _ := lab.Exec("systemctl", "is-active", "edgefwd.service"); strings.TrimSpace(state) == "active" {
			t.Error("after rpm -e: edgefwd.service is still active")
		}
		if _, err := lab.Exec("test", "-L", "/etc/systemd/system/sysinit.target.wants/edgefwd.service"); err == nil {
			t.Error("after rpm -e: edgefwd.service is still enabled")
		}
		if got := pkgTableHandle(t, lab); got != handle {
			t.Errorf("after rpm -e: table handle %s, was %s", got, handle)
		}
		lab.MustExec(t, "test", "-f", "/etc/edgefw/policy.yaml.rpmsave")
		lab.MustExec(t, "test", "!", "-e", "/usr/bin/edgefwd")
	})
}

// pkgTableHandle returns the kernel's handle of table inet edgefw in the
// lab. A table deleted and created again gets a new one.
func pkgTableHandle(t *testing.T, lab *systemdLab) string {
	t.Helper()
	out := lab.MustExec(t, "nft", "-a", "list", "table", "inet", "edgefw")
	m := regexp.MustCompile(`table inet edgefw \{ # handle (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no handle in nft -a list table inet edgefw:\n%s", out)
	}
	return m[1]
}

// pkgDebEntry is one line of dpkg-deb --contents.
type pkgDebEntry struct{ mode, owner string }

// pkgDebListing returns the entries of a .deb by absolute path, without
// the trailing slash of directories.
func pkgDebListing(t *testing.T, deb string) map[string]pkgDebEntry {
	t.Helper()
	listing := map[string]pkgDebEntry{}
	// MODE OWNER/GROUP SIZE DATE TIME ./PATH
	for _, line := range strings.Split(strings.TrimSpace(pkgRun(t, "dpkg-deb", "--contents", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 {
			t.Fatalf("dpkg-deb --contents: %q", line)
		}
		path := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		if path == "" {
			continue
		}
		listing[path] = pkgDebEntry{mode: f[0], owner: f[1]}
	}
	return listing
}

// pkgAllowed says whether a package may install path: one of edgefw's own
// places, or a directory above one.
func pkgAllowed(path string) bool {
	for _, prefix := range pkgAllowedPrefixes {
		if strings.HasPrefix(path, prefix) || strings.HasPrefix(prefix, path+"/") {
			return true
		}
	}
	return false
}

// pkgCheckStatic checks that a program is for the given machine and
// statically linked: no interpreter (dynamic loader), no libraries.
func pkgCheckStatic(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: %v, want %v", filepath.Base(path), f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a dynamic loader: not static (CGO_ENABLED=0)", filepath.Base(path))
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs %v: not static", filepath.Base(path), libs)
	}
}

// pkgCheckScript checks a maintainer script: POSIX sh, set -e, valid syntax.
func pkgCheckScript(t *testing.T, path string) {
	t.Helper()
	data := pkgReadFile(t, path)
	if !strings.HasPrefix(data, "#!/bin/sh\n") {
		t.Errorf("%s does not start with #!/bin/sh", path)
	}
	if !regexp.MustCompile(`(?m)^set -e$`).MatchString(data) {
		t.Errorf("%s has no set -e", path)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s is not executable (%v)", path, err)
	}
	shells := []string{"sh"}
	if _, err := exec.LookPath("dash"); err == nil {
		shells = append(shells, "dash") // the strictest POSIX shell around
	}
	for _, sh := range shells {
		if out, err := exec.Command(sh, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh, path, err, out)
		}
	}
}

func pkgSameFile(t *testing.T, want, got string) {
	t.Helper()
	if pkgReadFile(t, want) != pkgReadFile(t, got) {
		t.Errorf("%s differs from %s", got, want)
	}
}

func pkgLogSize(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %.1f MiB", filepath.Base(path), float64(fi.Size())/(1<<20))
}

// pkgSplitList splits "a, b" (a control field) or lines (rpm) into names.
func pkgSplitList(s string) []string {
	var names []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			names = append(names, f)
		}
	}
	slices.Sort(names)
	return names
}

// pkgRun runs a command and returns its standard output, failing the test
// with both outputs if it fails.
func pkgRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func pkgReadFile(t testing.TB, path string) string {
	t.Helper()
	return string(pkgReadFileBytes(t, path))
}

func pkgReadFileBytes(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
