// Package testnetns runs a test inside a private network namespace of its
// own, so that it can fault the network with the kernel's own tools
// (nftables rules, addresses added and removed) without touching the
// machine's: the test binary runs the one test again under `unshare -n`,
// where only a loopback interface exists, and the outer test reports what
// the inner one did.
//
// Use it at the top of a test:
//
//	if !testnetns.Enter(t) {
//		return // the test ran in its namespace; its result is this test's
//	}
//	... the test body, inside the namespace ...
package testnetns

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// insideEnv names the test running inside its namespace.
const insideEnv = "PALYRA_TESTNETNS"

// Enter reports true when the test runs inside its namespace (the loopback
// interface is up): the caller then runs the test body. Outside, it runs
// the test again inside a new namespace, fails t if that run failed, and
// reports false: the caller returns. Where no namespace can be made (not
// root, no unshare or ip), it skips t and says what is missing; `make test`
// installs what a Debian machine lacks, so CI never skips.
//
// A benchmark enters the same way; its inner run's output (the figures
// it reports) is copied to standard output, where `go test -bench` prints
// results.
func Enter(t testing.TB) bool {
	t.Helper()
	if os.Getenv(insideEnv) == t.Name() {
		Run(t, "ip", "link", "set", "lo", "up")
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root (unshare -n); run the tests as root")
	}
	for _, tool := range []string{"unshare", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("a network namespace test needs %s (packages util-linux, iproute2, nftables; make test installs them)", tool)
		}
	}
	args := []string{"-n", os.Args[0], "-test.count=1"}
	_, bench := t.(*testing.B)
	if bench {
		args = append(args, "-test.run=^$", "-test.bench="+runPattern(t.Name()), "-test.benchmem")
		if f := flag.Lookup("test.benchtime"); f != nil {
			args = append(args, "-test.benchtime="+f.Value.String())
		}
	} else {
		args = append(args, "-test.run="+runPattern(t.Name()))
	}
	if testing.Verbose() {
		args = append(args, "-test.v=true")
	}
	ctx := context.Background()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline.Add(-time.Second))
			defer cancel()
			args = append(args, "-test.timeout="+time.Until(deadline).Round(time.Second).String())
		}
	}
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(), insideEnv+"="+t.Name())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case bench:
		os.Stdout.Write(out.Bytes())
	case err != nil || testing.Verbose():
		t.Logf("inside its network namespace:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("the test failed inside its network namespace: %v", err)
	}
	if !strings.Contains(out.String(), "PASS") && !strings.Contains(out.String(), "ok") {
		t.Fatalf("the test did not run inside its network namespace:\n%s", out.String())
	}
	return false
}

// runPattern is a -test.run pattern that matches the test named name and
// no other: each level of a subtest name anchored on its own.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// NFT loads rules (nft's own syntax, as for `nft -f`) into the namespace's
// ruleset; the test's namespace goes away with it, so nothing needs undoing.
func NFT(t testing.TB, rules string) {
	t.Helper()
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s\nrules:\n%s", err, out, rules)
	}
}

// filterTable is the table DropUDP, DropAll and Allow manage.
const filterTable = "palyra_test"

// DropUDP drops every UDP packet to port on the namespace's interfaces.
func DropUDP(t testing.TB, port int) {
	t.Helper()
	addRule(t, fmt.Sprintf("udp dport %d drop", port))
}

// DropTCP drops every TCP packet to port.
func DropTCP(t testing.TB, port int) {
	t.Helper()
	addRule(t, fmt.Sprintf("tcp dport %d drop", port))
}

// DropAll drops every packet to or from port, UDP and TCP alike: the
// peer on the port is cut off without a word either way.
func DropAll(t testing.TB, port int) {
	t.Helper()
	addRule(t, fmt.Sprintf("th dport %d drop", port))
	addRule(t, fmt.Sprintf("th sport %d drop", port))
}

// DropShare drops percent of the packets to port and percent of those
// from it, UDP and TCP alike, chosen at random by the kernel.
func DropShare(t testing.TB, port, percent int) {
	t.Helper()
	addRule(t, fmt.Sprintf("th dport %d numgen random mod 100 < %d drop", port, percent))
	addRule(t, fmt.Sprintf("th sport %d numgen random mod 100 < %d drop", port, percent))
}

// Allow removes every rule DropUDP, DropTCP, DropAll and DropShare added.
func Allow(t testing.TB) {
	t.Helper()
	// Declaring the table first makes flushing it work before any rule.
	NFT(t, fmt.Sprintf("table inet %[1]s {}\nflush table inet %[1]s\n", filterTable))
}

func addRule(t testing.TB, rule string) {
	t.Helper()
	NFT(t, fmt.Sprintf(`table inet %[1]s {
	chain input {
		type filter hook input priority 0; policy accept;
	}
}
add rule inet %[1]s input %[2]s
`, filterTable, rule))
}

// Run runs a command inside the namespace (ip addr add, say) and fails t
// with its output if it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
