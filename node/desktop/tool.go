package desktop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Everything but freedesktop notifications goes through the platform's own
// command-line tools (xclip, pbcopy, powershell...): they are there on every
// desktop that can do the job, and they keep this package free of cgo.

const (
	// stderrLimit caps how much of a tool's standard error is kept for an
	// error message.
	stderrLimit = 2048
	// waitDelay bounds how long Wait waits for a tool's output pipes to
	// close after it exited, in case a child it left behind holds them.
	waitDelay = 2 * time.Second
)

// toolRun is one run of an external tool.
type toolRun struct {
	path  string    // the program
	args  []string  // its arguments, without the program
	env   []string  // its environment; nil means this process's
	stdin io.Reader // nil means no input (the null device)

	// detaches says the tool forks a child that stays behind and inherits
	// stdout and stderr (xclip -i keeps running to own the selection). Then
	// stdout goes to the null device and stderr to an unlinked temporary
	// file, not to pipes: the child would hold a pipe open, and Wait would
	// block on it until the child exits.
	detaches bool

	sysProcAttr *syscall.SysProcAttr // nil for the default
}

// toolError is a tool that failed: it could not start, exited non-zero or
// was killed. Stderr is the start of what it printed on standard error.
type toolError struct {
	Tool   string // the program's base name
	Err    error
	Stderr string
}

func (e *toolError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("%s: %v", e.Tool, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Tool, e.Err, e.Stderr)
}

func (e *toolError) Unwrap() error { return e.Err }

// run runs the tool under ctx and returns its standard output. A ctx that
// ends first kills the tool and makes run return ctx's error.
func (r toolRun) run(ctx context.Context) ([]byte, error) {
	name := filepath.Base(r.path)
	cmd := exec.CommandContext(ctx, r.path, r.args...)
	cmd.Env = r.env
	cmd.Stdin = r.stdin
	cmd.SysProcAttr = r.sysProcAttr
	cmd.WaitDelay = waitDelay

	var stdout bytes.Buffer
	stderr := &limitedBuffer{limit: stderrLimit}
	var stderrFile *os.File
	if r.detaches {
		f, err := os.CreateTemp("", "palyra-desktop-stderr-*")
		if err != nil {
			return nil, fmt.Errorf("running %s: creating a file for its errors: %w", name, err)
		}
		// Unlinked at once: only the descriptors keep it, ours and
		// the detached child's.
		_ = os.Remove(f.Name())
		defer f.Close()
		stderrFile = f
		cmd.Stderr = f
	} else {
		cmd.Stdout = &stdout
		cmd.Stderr = stderr
	}

	err := cmd.Run()
	if stderrFile != nil {
		_, _ = stderrFile.Seek(0, io.SeekStart)
		_, _ = io.Copy(stderr, io.LimitReader(stderrFile, stderrLimit))
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("running %s: %w", name, ctxErr)
		}
		return nil, &toolError{Tool: name, Err: err, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// limitedBuffer keeps the first limit bytes written to it and drops the
// rest, so a chatty tool cannot fill memory with its errors.
type limitedBuffer struct {
	buf   bytes.Buffer
	limit int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// String is what was kept, trimmed, made valid UTF-8 and put on one line.
func (b *limitedBuffer) String() string {
	s := strings.ToValidUTF8(strings.TrimSpace(b.buf.String()), "\uFFFD")
	return strings.Join(strings.Fields(s), " ")
}

// stderrOf returns what a failed tool printed on standard error, or "".
func stderrOf(err error) string {
	var te *toolError
	if errors.As(err, &te) {
		return te.Stderr
	}
	return ""
}

// latin1OrUTF8 returns b as text. Valid UTF-8 is taken as it is; anything
// else is read as ISO 8859-1, the encoding of the X11 STRING target, which is
// what a clipboard owner that does not offer UTF-8 sends.
func latin1OrUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}
