//go:build unix

package builtin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
)

type shellResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// program returns the absolute path of a system program the tests run.
func program(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"/bin", "/usr/bin"} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	t.Fatalf("no %s in /bin or /usr/bin", name)
	return ""
}

// notListed is the note Describe adds when path is not the allowed one
// (on systems where /bin is not a link to /usr/bin, "echo" may be found in
// another directory than the one allowed).
func notListed(t *testing.T, path, allowed string) string {
	t.Helper()
	a, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	b, err := filepath.EvalSymlinks(filepath.Dir(allowed))
	if err != nil {
		t.Fatal(err)
	}
	if a == b && filepath.Base(path) == filepath.Base(allowed) {
		return ""
	}
	return " (not on this node's allow-list, so it will be refused)"
}

func resolved(t *testing.T, path string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func shellArgs(t *testing.T, command string, args ...string) string {
	t.Helper()
	fields := map[string]any{"command": command}
	if len(args) > 0 {
		fields["args"] = args
	}
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestShellExec(t *testing.T) {
	t.Parallel()
	echo, sh, cat := program(t, "echo"), program(t, "sh"), program(t, "cat")
	r := newRegistry(t, builtin.Config{ShellAllow: []string{"/nonexistent/program", "relative/echo", echo, sh, cat}})

	for _, tc := range []struct {
		name string
		args string
		want shellResult
	}{
		{"echo", shellArgs(t, echo, "hello", "world"), shellResult{Stdout: "hello world\n"}},
		{"by name in PATH", shellArgs(t, "echo", "found"), shellResult{Stdout: "found\n"}},
		{"exit code", shellArgs(t, sh, "-c", "exit 3"), shellResult{ExitCode: 3}},
		{"stderr", shellArgs(t, sh, "-c", "echo oops >&2; exit 1"), shellResult{ExitCode: 1, Stderr: "oops\n"}},
		// Arguments reach the program as they are: no shell expands them.
		{"no shell", shellArgs(t, echo, "$HOME", ";", "|", "*", "`id`", "a b", "'q'"), shellResult{Stdout: "$HOME ; | * `id` a b 'q'\n"}},
		{"stdin", fmt.Sprintf(`{"command":%q,"stdin":"line one\nline two\n"}`, cat), shellResult{Stdout: "line one\nline two\n"}},
		{"no stdin", fmt.Sprintf(`{"command":%q}`, cat), shellResult{}},
		{"home folder", shellArgs(t, sh, "-c", "pwd -P"), shellResult{Stdout: homeDir(t) + "\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got shellResult
			if err := invoke(t, r, "shell.exec", tc.args, &got); err != nil {
				t.Fatalf("shell.exec %s: %v", tc.args, err)
			}
			if got != tc.want {
				t.Errorf("shell.exec %s = %+v, want %+v", tc.args, got, tc.want)
			}
		})
	}
}

func homeDir(t *testing.T) string {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return resolved(t, home)
}

// TestShellExecEnvironment: a command sees PATH, HOME and LANG only, none
// of the node's other variables.
func TestShellExecEnvironment(t *testing.T) {
	t.Setenv("PALYRA_TEST_SECRET", "do not pass on")
	t.Setenv("LANG", "C.UTF-8")
	env := program(t, "env")
	r := newRegistry(t, builtin.Config{ShellAllow: []string{env}})
	var got shellResult
	if err := invoke(t, r, "shell.exec", shellArgs(t, env), &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(got.Stdout) {
		name, _, _ := strings.Cut(line, "=")
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"HOME", "LANG", "PATH"}; !slices.Equal(names, want) {
		t.Errorf("environment has %v, want %v", names, want)
	}
}

func TestShellExecAllowList(t *testing.T) {
	t.Parallel()
	echo, ls := program(t, "echo"), program(t, "ls")
	dir := t.TempDir()
	linkToEcho := filepath.Join(dir, "my-echo")
	if err := os.Symlink(echo, linkToEcho); err != nil {
		t.Fatal(err)
	}
	linkToLs := filepath.Join(dir, "innocent")
	if err := os.Symlink(ls, linkToLs); err != nil {
		t.Fatal(err)
	}

	// A program runs by the name it was allowed by: another name for the
	// same file is another program (on busybox systems /bin/sh and /bin/ls
	// are one file).
	t.Run("another name for an allowed program", func(t *testing.T) {
		t.Parallel()
		r := newRegistry(t, builtin.Config{ShellAllow: []string{echo}})
		var got shellResult
		wantError(t, invoke(t, r, "shell.exec", shellArgs(t, linkToEcho, "via link"), &got),
			capability.CodeNotAllowed, fmt.Sprintf("%q is not on this node's allow-list", linkToEcho))
	})
	t.Run("symlink in the allow-list", func(t *testing.T) {
		t.Parallel()
		r := newRegistry(t, builtin.Config{ShellAllow: []string{linkToEcho}})
		var got shellResult
		if err := invoke(t, r, "shell.exec", shellArgs(t, linkToEcho, "listed by link"), &got); err != nil || got.Stdout != "listed by link\n" {
			t.Errorf("shell.exec of a linked allow-list entry = %+v, %v", got, err)
		}
		wantError(t, invoke(t, r, "shell.exec", shellArgs(t, echo, "by its target"), &got),
			capability.CodeNotAllowed, "is not on this node's allow-list")
	})
	t.Run("symlinked directory", func(t *testing.T) {
		t.Parallel()
		real := filepath.Join(t.TempDir(), "real")
		if err := os.Mkdir(real, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(echo, filepath.Join(real, "echo")); err != nil {
			t.Fatal(err)
		}
		linkedDir := filepath.Join(t.TempDir(), "linked")
		if err := os.Symlink(real, linkedDir); err != nil {
			t.Fatal(err)
		}
		r := newRegistry(t, builtin.Config{ShellAllow: []string{filepath.Join(linkedDir, "echo")}})
		var got shellResult
		if err := invoke(t, r, "shell.exec", shellArgs(t, filepath.Join(real, "echo"), "same directory"), &got); err != nil || got.Stdout != "same directory\n" {
			t.Errorf("shell.exec through a linked directory = %+v, %v", got, err)
		}
	})

	r := newRegistry(t, builtin.Config{ShellAllow: []string{echo, linkToEcho}})
	var got shellResult
	for _, tc := range []struct {
		command string
		code    capability.Code
		want    string
	}{
		{ls, capability.CodeNotAllowed, fmt.Sprintf("%q is not on this node's allow-list for shell.exec", ls)},
		{linkToLs, capability.CodeNotAllowed, fmt.Sprintf("%q is not on this node's allow-list for shell.exec", linkToLs)},
		{"ls", capability.CodeNotAllowed, "is not on this node's allow-list"},
		{"./echo", capability.CodeNotAllowed, `command "./echo" must be an absolute path or a program name to look up in PATH`},
		{"no-such-program-palyra", capability.CodeFailed, `no program named "no-such-program-palyra" in this node's PATH`},
		{filepath.Join(dir, "missing"), capability.CodeFailed, "no program at"},
	} {
		wantError(t, invoke(t, r, "shell.exec", shellArgs(t, tc.command), &got), tc.code, tc.want)
	}
	wantError(t, invoke(t, newRegistry(t, builtin.Config{}), "shell.exec", shellArgs(t, echo), &got),
		capability.CodeNotAllowed, "is not on this node's allow-list")
}

func TestShellExecOutputLimit(t *testing.T) {
	t.Parallel()
	yes, head := program(t, "yes"), program(t, "head")

	// yes writes forever: the limit stops it.
	r := newRegistry(t, builtin.Config{ShellAllow: []string{yes, head}, ShellMaxOutput: 1000})
	var got shellResult
	wantError(t, invoke(t, r, "shell.exec", shellArgs(t, yes), &got), capability.CodeOutputTooLarge,
		"wrote more than 1000 bytes of output (stdout and stderr together), so it was stopped")

	// Exactly the limit is fine.
	if err := invoke(t, r, "shell.exec", shellArgs(t, head, "-c", "1000", "/dev/zero"), &got); err != nil || len(got.Stdout) != 1000 {
		t.Errorf("1000 bytes with a limit of 1000: %d bytes, %v", len(got.Stdout), err)
	}

	// The default limit is 64 KiB.
	r = newRegistry(t, builtin.Config{ShellAllow: []string{head}})
	wantError(t, invoke(t, r, "shell.exec", shellArgs(t, head, "-c", "70000", "/dev/zero"), &got), capability.CodeOutputTooLarge, "more than 64 KiB")
}

func TestShellExecTimeout(t *testing.T) {
	t.Parallel()
	sleep := program(t, "sleep")
	var got shellResult

	// The call's timeout_ms; a process still running after 30 s would
	// fail the test by its own deadline long before this returned.
	r := newRegistry(t, builtin.Config{ShellAllow: []string{sleep}})
	wantError(t, invoke(t, r, "shell.exec", fmt.Sprintf(`{"command":%q,"args":["30"],"timeout_ms":200}`, sleep), &got),
		capability.CodeTimeout, "command timed out after 200ms")

	// The node's ShellTimeout bounds a longer timeout_ms.
	r = newRegistry(t, builtin.Config{ShellAllow: []string{sleep}, ShellTimeout: 150 * time.Millisecond})
	wantError(t, invoke(t, r, "shell.exec", fmt.Sprintf(`{"command":%q,"args":["30"],"timeout_ms":600000}`, sleep), &got),
		capability.CodeTimeout, "command timed out after 150ms")

	// So does the call's deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	r = newRegistry(t, builtin.Config{ShellAllow: []string{sleep}})
	_, err := r.Invoke(ctx, "shell.exec", capability.Call{Args: json.RawMessage(shellArgs(t, sleep, "30"))})
	wantError(t, err, capability.CodeTimeout)
}

// TestShellExecCanceled: a caller that gives up stops the command.
func TestShellExecCanceled(t *testing.T) {
	t.Parallel()
	sleep := program(t, "sleep")
	r := newRegistry(t, builtin.Config{ShellAllow: []string{sleep}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := r.Invoke(ctx, "shell.exec", capability.Call{
		Args: json.RawMessage(shellArgs(t, sleep, "30")),
		// The handler reports progress once the command runs: give up then.
		Progress: func(string) { cancel() },
	})
	wantError(t, err, capability.CodeCanceled, "the call was canceled")
}

func TestShellExecDescribe(t *testing.T) {
	t.Parallel()
	echo := program(t, "echo")
	caps := builtin.All(func() builtin.Config { return builtin.Config{ShellAllow: []string{echo}} })
	describe := caps[len(caps)-1].Describe
	lookedUp, err := exec.LookPath("echo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ args, want string }{
		{shellArgs(t, echo, "-n", "a b", ""), echo + ` -n "a b" ""`},
		{shellArgs(t, "echo", "x"), lookedUp + " x" + notListed(t, lookedUp, echo)},
		{fmt.Sprintf(`{"command":%q,"stdin":"rm -rf ~"}`, echo), echo + ` with input "rm -rf ~"`},
		{shellArgs(t, program(t, "ls")), program(t, "ls") + " (not on this node's allow-list, so it will be refused)"},
	} {
		if got := describe(json.RawMessage(tc.args)); got != "run "+tc.want {
			t.Errorf("Describe(%s) = %q\nwant %q", tc.args, got, "run "+tc.want)
		}
	}
}

func TestShellExecArguments(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, builtin.Config{})
	var got shellResult
	for _, tc := range []struct{ args, want string }{
		{`{}`, `missing argument "command"`},
		{`{"command":""}`, `argument "command": must be at least 1 character long`},
		{`{"command":"x","args":"a b"}`, `argument "args": must be an array`},
		{`{"command":"x","args":["a",2]}`, `argument "args[1]": must be a string`},
		{`{"command":"x","timeout_ms":0}`, `argument "timeout_ms": must be at least 1`},
		{`{"command":"x","timeout_ms":1.5}`, `argument "timeout_ms": must be an integer`},
		{`{"command":"x","shell":true}`, `unknown argument "shell"`},
		{fmt.Sprintf(`{"command":"x","args":[%s"a"]}`, strings.Repeat(`"a",`, 256)), `argument "args": must have at most 256 items`},
	} {
		wantError(t, invoke(t, r, "shell.exec", tc.args, &got), capability.CodeInvalidArgs, tc.want)
	}
}
