package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/palyra/palyra-go/node/capability"
)

const (
	// shellWaitDelay bounds how long a finished or killed command's
	// output pipes may stay open (held by a child that escaped the kill).
	shellWaitDelay = 2 * time.Second
	// maxPromptInput bounds how much of a command's input a consent
	// prompt shows.
	maxPromptInput = 500
)

type shellArgs struct {
	Command   string   `json:"command"`
	Args      []string `json:"args"`
	Stdin     *string  `json:"stdin"`
	TimeoutMS int64    `json:"timeout_ms"`
}

type shellOutput struct {
	// ExitCode is the command's exit status; -1 if a signal ended it.
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

func shellExec(cfg func() Config) capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name: "shell.exec",
			Description: "Run a program on this computer and return its exit code and output. Only programs on the node's allow-list run, " +
				"directly (no shell), in the user's home folder, with a time and output limit.",
			Label: "Run allowed programs",
			Schema: json.RawMessage(`{
				"type": "object",
				"properties": {
					"command": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "Absolute path of the program, or a name looked up in PATH."},
					"args": {"type": "array", "items": {"type": "string"}, "maxItems": 256, "description": "Arguments, passed as they are (no shell)."},
					"stdin": {"type": "string", "maxLength": 65536, "description": "Text given to the program on its standard input."},
					"timeout_ms": {"type": "integer", "minimum": 1, "maximum": 600000, "description": "Stop the program after this long (the node's own limit may be shorter)."}
				},
				"required": ["command"],
				"additionalProperties": false
			}`),
			Privacy:        capability.PrivacySensitive,
			DefaultEnabled: false,
			DefaultConsent: capability.ConsentAsk,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			var args shellArgs
			if err := decodeArgs(call.Args, &args); err != nil {
				return nil, err
			}
			out, err := runShell(ctx, cfg(), args, call.Progress)
			if err != nil {
				return nil, err
			}
			return marshal(out)
		},
		Describe: func(raw json.RawMessage) string {
			var args shellArgs
			if err := decodeArgs(raw, &args); err != nil {
				return "run a program"
			}
			return describeShell(cfg(), args)
		},
	}
}

// describeShell tells the owner what exactly would run: the program as it
// resolves, its arguments, and its input, which for an interpreter is the
// script.
func describeShell(cfg Config, args shellArgs) string {
	var b strings.Builder
	b.WriteString("run ")
	path, err := resolveCommand(args.Command)
	if err != nil {
		path = args.Command
	}
	b.WriteString(quoteIfNeeded(path))
	for _, a := range args.Args {
		b.WriteString(" ")
		b.WriteString(quoteIfNeeded(a))
	}
	if args.Stdin != nil {
		in := []rune(*args.Stdin)
		if len(in) > maxPromptInput {
			fmt.Fprintf(&b, " with input %q… (%d more characters)", string(in[:maxPromptInput]), len(in)-maxPromptInput)
		} else {
			fmt.Fprintf(&b, " with input %q", string(in))
		}
	}
	if err == nil && !allowListed(path, cfg.ShellAllow) {
		b.WriteString(" (not on this node's allow-list, so it will be refused)")
	}
	return b.String()
}

// runShell runs an allow-listed program directly, without a shell.
func runShell(ctx context.Context, cfg Config, args shellArgs, progress func(string)) (shellOutput, error) {
	path, err := resolveCommand(args.Command)
	if err != nil {
		return shellOutput{}, err
	}
	if !allowListed(path, cfg.ShellAllow) {
		return shellOutput{}, capability.NewError(capability.CodeNotAllowed, "%q is not on this node's allow-list for shell.exec", path)
	}

	limit := cfg.ShellTimeout
	if args.TimeoutMS > 0 {
		limit = min(limit, time.Duration(args.TimeoutMS)*time.Millisecond)
	}
	if deadline, ok := ctx.Deadline(); ok {
		// Only for the message: the context enforces it anyway.
		limit = min(limit, time.Until(deadline))
	}
	if limit <= 0 {
		return shellOutput{}, capability.NewError(capability.CodeTimeout, "no time left to run %s before the call's deadline", path)
	}
	runCtx, cancelRun := context.WithTimeout(ctx, limit)
	defer cancelRun()
	// Running past the output limit stops the command the same way.
	outCtx, stopOutput := context.WithCancelCause(runCtx)
	defer stopOutput(nil)

	out := &outputLimit{remaining: cfg.ShellMaxOutput, exceeded: func() { stopOutput(errOutputLimit) }}
	stdout, stderr := &limitedWriter{limit: out}, &limitedWriter{limit: out}

	cmd := exec.CommandContext(outCtx, path, args.Args...)
	cmd.Env = shellEnv()
	if home, err := os.UserHomeDir(); err == nil {
		cmd.Dir = home
	}
	if args.Stdin != nil {
		cmd.Stdin = strings.NewReader(*args.Stdin)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = shellWaitDelay
	// The command and its children are one tree that stopping it kills:
	// on Unix a process group, on Windows a job object.
	release, err := startTree(cmd)
	if err != nil {
		if runCtx.Err() != nil {
			// The deadline passed, or the caller gave up, before it
			// started.
			return shellOutput{}, err
		}
		return shellOutput{}, capability.NewError(capability.CodeFailed, "starting %s: %v", path, err)
	}
	progress(fmt.Sprintf("running %s (pid %d)", path, cmd.Process.Pid))
	waitErr := cmd.Wait()
	release()

	switch {
	case out.overflowed():
		return shellOutput{}, capability.NewError(capability.CodeOutputTooLarge,
			"%s wrote more than %s of output (stdout and stderr together), so it was stopped", path, sizeText(int64(cfg.ShellMaxOutput)))
	case waitErr != nil && errors.Is(ctx.Err(), context.Canceled):
		return shellOutput{}, capability.NewError(capability.CodeCanceled, "the call was canceled, so %s was stopped", path)
	case waitErr != nil && runCtx.Err() != nil:
		return shellOutput{}, capability.NewError(capability.CodeTimeout, "command timed out after %v, so %s was stopped", limit.Round(time.Millisecond), path)
	}

	result := shellOutput{Stdout: stdout.buf.String(), Stderr: stderr.buf.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(waitErr, &exitErr):
		result.ExitCode = exitErr.ExitCode()
	case waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay):
		// ErrWaitDelay: the command exited well, and a child it left
		// running kept its output open; what it wrote so far is returned.
		return shellOutput{}, fmt.Errorf("running %s: %w", path, waitErr)
	}
	return result, nil
}

// shellEnv picks the variables named by shellEnvNames from the node's
// environment: a command should not see the node's secrets or settings.
func shellEnv() []string {
	var env []string
	for _, name := range shellEnvNames {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// resolveCommand finds the program a command names: an absolute path, or a
// name looked up in PATH. It does not follow a symlink in the last element:
// the program runs under the name it was allowed by (a multi-call binary
// such as busybox behaves by that name), so the allow-list compares names,
// not the files they lead to.
func resolveCommand(command string) (string, error) {
	path := command
	if !filepath.IsAbs(command) {
		// A relative path would depend on the node's working directory.
		if strings.ContainsAny(command, `/\`) {
			return "", capability.NewError(capability.CodeNotAllowed, "command %q must be an absolute path or a program name to look up in PATH", command)
		}
		found, err := exec.LookPath(command)
		if err != nil {
			return "", capability.NewError(capability.CodeFailed, "no program named %q in this node's PATH", command)
		}
		path = found
	}
	path = filepath.Clean(path)
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		return "", capability.NewError(capability.CodeFailed, "no program at %s", path)
	}
	if isBatchFile(path) {
		// cmd.exe runs batch files and re-parses their arguments, which
		// os/exec does not escape for it: an argument could run commands.
		return "", capability.NewError(capability.CodeNotAllowed, "%s is a batch file; shell.exec does not run batch files, whose arguments cmd.exe would interpret", path)
	}
	return path, nil
}

// isBatchFile reports whether Windows would run path through cmd.exe.
func isBatchFile(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return runtime.GOOS == "windows" && (ext == ".bat" || ext == ".cmd")
}

// allowListed reports whether path is one of the allow-list's entries: the
// same name in the same directory, with symlinks followed in the
// directories only (so /bin/ls and /usr/bin/ls match where /bin links to
// /usr/bin, but /bin/sh never matches an allowed /bin/ls, even when both
// lead to the same multi-call binary).
func allowListed(path string, allow []string) bool {
	want, err := canonicalName(path)
	if err != nil {
		return false
	}
	for _, entry := range allow {
		if !filepath.IsAbs(entry) {
			continue
		}
		if got, err := canonicalName(entry); err == nil && got == want {
			return true
		}
	}
	return false
}

// canonicalName resolves symlinks in path's directory, keeping its last
// element.
func canonicalName(path string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(filepath.Clean(path)))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(path)), nil
}

// quoteIfNeeded quotes what would read ambiguously in a command line.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' || r == '\'' || r == '\\'
	}) {
		return strconv.Quote(s)
	}
	return s
}

var errOutputLimit = errors.New("output limit reached")

// outputLimit is the byte budget stdout and stderr share.
type outputLimit struct {
	// exceeded is called once, when the budget runs out.
	exceeded func()

	// mu guards remaining and over.
	mu        sync.Mutex
	remaining int
	over      bool
}

func (l *outputLimit) overflowed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.over
}

// limitedWriter collects one stream within the shared budget. exec copies
// each stream from its own goroutine; buf is read only after Wait.
type limitedWriter struct {
	limit *outputLimit
	buf   bytes.Buffer
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	l := w.limit
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return 0, errOutputLimit
	}
	if len(p) > l.remaining {
		w.buf.Write(p[:l.remaining])
		n := l.remaining
		l.remaining, l.over = 0, true
		l.exceeded()
		return n, errOutputLimit
	}
	w.buf.Write(p)
	l.remaining -= len(p)
	return len(p), nil
}
