package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGroupHelp: a group on its own, with --help, or after help prints
// its verbs on standard output and exits 0; `palyra node` is a group.
func TestGroupHelp(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"nodes"}, []string{"describe", "invoke", "list", "watch"}},
		{[]string{"nodes", "--help"}, []string{"describe", "invoke", "list", "watch"}},
		{[]string{"help", "nodes"}, []string{"describe", "invoke", "list", "watch"}},
		{[]string{"node"}, []string{"pair", "run", "status", "forget", "capabilities"}},
		{[]string{"help", "node", "pair"}, []string{"--gateway", "--pin", "--qr-image"}},
		{[]string{"calls", "get", "--help"}, []string{"palyra calls get REQUEST_ID [flags]", "--no-wait"}},
		{nil, []string{"nodes", "node", "completion", "--verbose"}},
	} {
		rc, out, errOut := c.run(nil, "", tc.args...)
		if rc != 0 || errOut != "" {
			t.Errorf("palyra %s: exit %d, stderr %q", strings.Join(tc.args, " "), rc, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("palyra %s: no %q in:\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
}

// TestUsageErrors: every way of using a command wrongly exits 2 with one
// line saying what is wrong and one with the usage and --help.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nods"}, `palyra: unknown command "nods"; did you mean nodes or node?`},
		{[]string{"nodes", "lst"}, `palyra nodes: unknown command "lst"; did you mean list?`},
		{[]string{"nodes", "list", "--bogus"}, "palyra nodes list: unknown flag: --bogus"},
		{[]string{"nodes", "list", "extra"}, `palyra nodes list: takes no arguments, got "extra"`},
		{[]string{"nodes", "invoke", "vm"}, "palyra nodes invoke: takes 2 arguments, got 1"},
		{[]string{"pairing", "code", "--ttl", "soon"}, `palyra pairing code: invalid argument "soon" for "--ttl" flag`},
		{[]string{"nodes", "invoke", "vm", "system.info", "--args", "{"}, "palyra nodes invoke: --args is not valid JSON"},
		{[]string{"node", "capabilities", "share", "x"}, `palyra node capabilities: unknown action "share"`},
		{[]string{"doctor", "--timeout", "0s"}, "palyra doctor: --timeout must be positive"},
	} {
		name := strings.Join(tc.args, " ")
		rc, out, errOut := c.run(nil, "", tc.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if rc != 2 || out != "" || len(lines) != 2 {
			t.Errorf("palyra %s: exit %d, stdout %q, stderr %q; want exit 2 and two lines on stderr", name, rc, out, errOut)
			continue
		}
		if !strings.HasPrefix(lines[0], tc.want) {
			t.Errorf("palyra %s: %q, want it to start %q", name, lines[0], tc.want)
		}
		if !strings.HasPrefix(lines[1], "Usage: palyra ") || !strings.Contains(lines[1], "--help") {
			t.Errorf("palyra %s: second line %q has no usage and --help", name, lines[1])
		}
	}
}

// TestPairingCodeJSONKeepsAmpersand: the link in --json is the link, with
// its '&' as typed, not "\u0026".
func TestPairingCodeJSONKeepsAmpersand(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.startGateway()
	rc, out, errOut := c.run(nil, "", "pairing", "code", "--json")
	if rc != 0 {
		t.Fatalf("pairing code --json: exit %d: %s", rc, errOut)
	}
	if strings.Contains(out, `\u0026`) || !strings.Contains(out, `"palyra://pair?v=1&`) {
		t.Errorf("pairing code --json escapes the link's '&':\n%s", out)
	}
}

// TestDeviceByNameOrPrefix: commands that take a device take its name or
// a unique start of its ID, in any case and without dashes, and say which
// devices an ambiguous name matches.
func TestDeviceByNameOrPrefix(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	addr := c.startGateway()
	c.pairAs(addr, "vm")
	c.pairAs(addr, "twin")
	c.pairAs(addr, "twin")
	var devs []map[string]any
	c.mustJSON(&devs, "devices", "list", "--json")
	ids := map[string][]string{}
	for _, d := range devs {
		ids[d["name"].(string)] = append(ids[d["name"].(string)], d["device_id"].(string))
	}
	if len(ids["vm"]) != 1 || len(ids["twin"]) != 2 {
		t.Fatalf("devices: %v", devs)
	}
	vm := ids["vm"][0]

	// By name.
	c.wantLines("calls list --node vm", "no queued calls")
	rc, _, errOut := c.run(nil, "", "nodes", "describe", "vm")
	if strings.Contains(errOut, "device ID") {
		t.Errorf("nodes describe vm: the name was taken for an ID: exit %d: %s", rc, errOut)
	}

	// By the shortest start of its ID no other device shares, in lower
	// case and without its dash.
	prefix := ""
	for n := 1; n <= len(vm); n++ {
		p := strings.ReplaceAll(vm[:n], "-", "")
		shared := false
		for _, d := range devs {
			if id := d["device_id"].(string); id != vm && strings.HasPrefix(strings.ReplaceAll(id, "-", ""), p) {
				shared = true
			}
		}
		if !shared {
			prefix = strings.ToLower(p)
			break
		}
	}
	c.wantLines("devices revoke "+prefix, "revoked "+vm+" (vm); its sessions are closed")

	// An ambiguous name names what it matches; an unknown one says so.
	rc, _, errOut = c.run(nil, "", "devices", "revoke", "twin")
	for _, w := range []string{`ambiguous: "twin" matches`, "twin (" + ids["twin"][0] + ")", "twin (" + ids["twin"][1] + ")"} {
		if rc != 1 || !strings.Contains(errOut, w) {
			t.Errorf("devices revoke twin: exit %d: %s; want %q", rc, errOut, w)
		}
	}
	rc, _, errOut = c.run(nil, "", "nodes", "invoke", "nosuch", "system.info")
	if rc != 1 || !strings.Contains(errOut, `no device named or starting with "nosuch"`) {
		t.Errorf("nodes invoke nosuch: exit %d: %s", rc, errOut)
	}
	// A whole ID with a typo is a typo, not a name.
	typo := []byte(vm)
	typo[0] = 'A'
	if vm[0] == 'A' {
		typo[0] = 'B'
	}
	rc, _, errOut = c.run(nil, "", "devices", "remove", string(typo))
	if rc != 1 || !strings.Contains(errOut, "typo") {
		t.Errorf("devices remove with a typo: exit %d: %s", rc, errOut)
	}
}

// TestCompleteDevices drives cobra's __complete protocol, which the shell
// scripts call: device names and IDs come from the running gateway, and
// nothing (without an error) when no gateway runs.
func TestCompleteDevices(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	rc, out, errOut := c.run(nil, "", "__complete", "nodes", "describe", "")
	if rc != 0 || strings.TrimSpace(out) != ":4" {
		t.Errorf("completing without a gateway: exit %d, %q, %q", rc, out, errOut)
	}
	addr := c.startGateway()
	c.pairAs(addr, "build-box")
	var devs []map[string]any
	c.mustJSON(&devs, "devices", "list", "--json")
	id := devs[0]["device_id"].(string)
	for _, args := range [][]string{
		{"__complete", "nodes", "invoke", ""},
		{"__complete", "devices", "revoke", "b"},
		{"__complete", "calls", "list", "--node", ""},
	} {
		rc, out, errOut := c.run(nil, "", args...)
		if rc != 0 || !strings.Contains(out, "build-box\t"+id+"\n") || !strings.Contains(out, id+"\tbuild-box\n") {
			t.Errorf("palyra %s: exit %d: %q %q", strings.Join(args, " "), rc, out, errOut)
		}
	}
}

// TestBashCompletion sources `palyra completion bash` into a real bash and
// completes as a person pressing Tab would: `palyra no` offers node and
// nodes, and `palyra nodes describe ` offers the paired device's name.
func TestBashCompletion(t *testing.T) {
	t.Parallel()
	// What a person's shell has: bash, with the bash-completion package
	// that cobra's script uses (make test-deps installs it).
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	bash, err := exec.LookPath("bash")
	if _, serr := os.Stat(bashCompletion); err != nil || serr != nil {
		t.Skipf("needs bash and %s (the bash-completion package; make test-deps installs it)", bashCompletion)
	}
	bin := filepath.Join(t.TempDir(), "palyra")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building palyra: %v\n%s", err, out)
	}
	c := newCLI(t)
	complete := func(line string) []string {
		t.Helper()
		script := fmt.Sprintf(`source %q || exit 1
source <(%q completion bash) || exit 1
COMP_LINE=%q; COMP_POINT=${#COMP_LINE}
read -r -a COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
__start_palyra
printf '%%s\n' "${COMPREPLY[@]}"`, bashCompletion, bin, line)
		cmd := exec.CommandContext(t.Context(), bash, "--norc", "--noprofile", "-c", script)
		cmd.Env = append(os.Environ(), "PALYRA_ADMIN_SOCKET="+c.env["PALYRA_ADMIN_SOCKET"], "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		// Outside a real Tab press compopt complains on stderr; the
		// candidates are what COMPREPLY holds.
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bash completing %q: %v\n%s", line, err, stderr.String())
		}
		return strings.Fields(string(out))
	}
	if got := complete("palyra no"); strings.Join(got, " ") != "node nodes" {
		t.Errorf("palyra no<Tab> offers %q, want node nodes", got)
	}
	addr := c.startGateway()
	c.pairAs(addr, "render-vm")
	if got := complete("palyra nodes describe re"); strings.Join(got, " ") != "render-vm" {
		t.Errorf("palyra nodes describe re<Tab> offers %q, want render-vm", got)
	}
}

// TestErrorsForPeople: a failing command says what it was doing and the
// cause on one line; --verbose has the chain whole, and --json an
// "error" object with both.
func TestErrorsForPeople(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	missing := filepath.Join(t.TempDir(), "none", "code.png")
	rc, _, errOut := c.run(nil, "", "node", "pair", "--qr-image", missing)
	want := "palyra: opening QR image: no such file or directory (--verbose for the whole error)\n"
	if rc != 1 || errOut != want {
		t.Errorf("exit %d, %q; want %q", rc, errOut, want)
	}
	rc, _, errOut = c.run(nil, "", "node", "pair", "--qr-image", missing, "--verbose")
	if rc != 1 || errOut != "palyra: opening QR image: open "+missing+": no such file or directory\n" {
		t.Errorf("--verbose: exit %d, %q", rc, errOut)
	}
	rc, out, _ := c.run(nil, "", "node", "pair", "--qr-image", missing, "--json")
	var got struct {
		Error struct{ Message, Detail string }
	}
	if rc != 1 || json.Unmarshal([]byte(out), &got) != nil || got.Error.Message != "opening QR image: no such file or directory" ||
		got.Error.Detail != "opening QR image: open "+missing+": no such file or directory" {
		t.Errorf("--json: exit %d, %q", rc, out)
	}
}

func TestShorten(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("invalid PIN")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{fmt.Errorf("pairing: %w", fmt.Errorf("%w: it has 8 digits", sentinel)), "pairing: invalid PIN: it has 8 digits"},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", fmt.Errorf("c: %w", fs.ErrNotExist))), "a: file does not exist"},
		{fmt.Errorf("a: %w", errors.Join(errors.New("b"), errors.New("c"))), "a: b\nc"},
	} {
		if got := shorten(tc.err); got != tc.want {
			t.Errorf("shorten(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestGenMan: make man's command writes a page per command, from the
// commands' own help.
func TestGenMan(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := filepath.Join(t.TempDir(), "man")
	if rc, _, errOut := c.run(nil, "", "gen-man", dir); rc != 0 {
		t.Fatalf("gen-man: exit %d: %s", rc, errOut)
	}
	page, err := os.ReadFile(filepath.Join(dir, "palyra-nodes-invoke.1"))
	if err != nil || !strings.Contains(string(page), "palyra nodes invoke DEVICE CAPABILITY") || !strings.Contains(string(page), "--queue-ttl") {
		t.Errorf("palyra-nodes-invoke.1: %v\n%s", err, page)
	}
}
