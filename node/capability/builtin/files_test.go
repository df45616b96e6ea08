//go:build unix

package builtin_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
)

type fileOutput struct {
	Path       string  `json:"path"`
	Size       int64   `json:"size"`
	Text       *string `json:"text"`
	DataBase64 *string `json:"data_base64"`
	Entries    []struct {
		Name string `json:"name"`
		Dir  bool   `json:"dir"`
		Size int64  `json:"size"`
	} `json:"entries"`
	Truncated bool `json:"truncated"`
}

// sharedFolder builds a shared folder beside a folder that is not shared,
// with links from one to the other.
func sharedFolder(t *testing.T) (shared, outside string) {
	t.Helper()
	base := t.TempDir()
	shared, outside = filepath.Join(base, "shared"), filepath.Join(base, "outside")
	write := func(path string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(shared, name)); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(outside, "secret.txt"), []byte("not yours\n"))
	write(filepath.Join(shared, "hello.txt"), []byte("hello, wörld\n"))
	write(filepath.Join(shared, "empty.txt"), nil)
	write(filepath.Join(shared, "binary.bin"), []byte{0xff, 0xfe, 0x00, 0x80})
	write(filepath.Join(shared, "sub", "inner.txt"), []byte("inner"))
	write(filepath.Join(shared, "big.txt"), bytes.Repeat([]byte("x"), 4097))
	link(filepath.Join(outside, "secret.txt"), "link-out")
	link("../outside/secret.txt", "relative-link-out")
	link(outside, "dir-out")
	link("hello.txt", "link-in")
	link("sub", "dir-in")
	link("missing-target", "dangling")
	if err := syscall.Mkfifo(filepath.Join(shared, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return shared, outside
}

func TestFilesRead(t *testing.T) {
	t.Parallel()
	shared, _ := sharedFolder(t)
	r := newRegistry(t, builtin.Config{SharedFolder: shared, FileMaxSize: 4096})

	text := func(path, want string) {
		t.Helper()
		var out fileOutput
		if err := invoke(t, r, "files.read", fmt.Sprintf(`{"path":%q}`, path), &out); err != nil {
			t.Fatalf("files.read %s: %v", path, err)
		}
		if out.Text == nil || *out.Text != want || out.Size != int64(len(want)) || out.DataBase64 != nil {
			t.Errorf("files.read %s = %+v, want text %q", path, out, want)
		}
	}
	text("hello.txt", "hello, wörld\n")
	text("empty.txt", "")
	text("sub/inner.txt", "inner")
	text("sub/../hello.txt", "hello, wörld\n")
	// Links that stay inside the folder are followed.
	text("link-in", "hello, wörld\n")
	text("dir-in/inner.txt", "inner")

	var bin fileOutput
	if err := invoke(t, r, "files.read", `{"path":"binary.bin"}`, &bin); err != nil {
		t.Fatal(err)
	}
	if bin.Text != nil || bin.DataBase64 == nil || *bin.DataBase64 != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe, 0x00, 0x80}) || bin.Size != 4 {
		t.Errorf("files.read binary.bin = %+v, want its bytes in base64", bin)
	}

	var list fileOutput
	if err := invoke(t, r, "files.read", `{"path":""}`, &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list.Entries {
		names = append(names, fmt.Sprintf("%s:%v", e.Name, e.Dir))
		if (e.Name == "hello.txt" || e.Name == "link-in") && e.Size != int64(len("hello, wörld\n")) {
			t.Errorf("%s listed with size %d", e.Name, e.Size)
		}
	}
	want := "big.txt:false binary.bin:false dangling:false dir-in:true dir-out:false empty.txt:false fifo:false hello.txt:false link-in:false link-out:false relative-link-out:false sub:true"
	if got := strings.Join(names, " "); list.Path != "." || got != want || list.Truncated {
		t.Errorf("listing = %s %q (truncated %v)\nwant . %q", list.Path, got, list.Truncated, want)
	}
	if err := invoke(t, r, "files.read", `{"path":"sub"}`, &list); err != nil || list.Path != "sub" || len(list.Entries) != 1 || list.Entries[0].Name != "inner.txt" {
		t.Errorf("files.read sub = %+v, %v", list, err)
	}

	for _, tc := range []struct {
		path  string
		code  capability.Code
		parts []string
	}{
		{"../outside/secret.txt", capability.CodeNotAllowed, []string{`path "../outside/secret.txt" is outside the shared folder`}},
		{"..", capability.CodeNotAllowed, []string{"outside the shared folder"}},
		{"sub/../../x", capability.CodeNotAllowed, []string{"outside the shared folder"}},
		{"/etc/passwd", capability.CodeNotAllowed, []string{`path "/etc/passwd" is outside the shared folder`}},
		{"link-out", capability.CodeNotAllowed, []string{`path "link-out" is outside the shared folder`}},
		{"relative-link-out", capability.CodeNotAllowed, []string{"outside the shared folder"}},
		{"dir-out", capability.CodeNotAllowed, []string{"outside the shared folder"}},
		{"dir-out/secret.txt", capability.CodeNotAllowed, []string{`path "dir-out/secret.txt" is outside the shared folder`}},
		{"missing.txt", capability.CodeFailed, []string{`no file "missing.txt" in the shared folder`}},
		{"dangling", capability.CodeFailed, []string{`no file "dangling" in the shared folder`}},
		{"fifo", capability.CodeNotAllowed, []string{`"fifo" is not a regular file or folder`}},
		{"hello.txt/x", capability.CodeFailed, nil},
		{"big.txt", capability.CodeOutputTooLarge, []string{`"big.txt" is 4097 bytes, more than the limit of 4 KiB for files.read`}},
		{"a\x00b", capability.CodeInvalidArgs, []string{"NUL"}},
	} {
		var out fileOutput
		args, _ := json.Marshal(map[string]string{"path": tc.path})
		err := invoke(t, r, "files.read", string(args), &out)
		if err == nil {
			t.Errorf("files.read %q = %+v, want %s", tc.path, out, tc.code)
			continue
		}
		wantError(t, err, tc.code, tc.parts...)
	}

	var out fileOutput
	wantError(t, invoke(t, r, "files.read", `{}`, &out), capability.CodeInvalidArgs, `missing argument "path"`)
	wantError(t, invoke(t, r, "files.read", `{"path":"`+strings.Repeat("a", 4097)+`"}`, &out), capability.CodeInvalidArgs, "at most 4096 characters")
}

func TestFilesReadWithoutSharedFolder(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, builtin.Config{})
	var out fileOutput
	wantError(t, invoke(t, r, "files.read", `{"path":"x"}`, &out), capability.CodeNotAllowed, "no shared folder is configured on this node")
}

// TestFilesReadConfigLive: the folder is read from the config at each
// call.
func TestFilesReadConfigLive(t *testing.T) {
	t.Parallel()
	first, second := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(second, "f"), []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	folder := first
	caps := builtin.All(func() builtin.Config { return builtin.Config{SharedFolder: folder} })
	r, err := capability.NewRegistry(caps, capability.Options{Settings: capability.Settings{Enabled: map[string]bool{"files.read": true}}})
	if err != nil {
		t.Fatal(err)
	}
	var out fileOutput
	wantError(t, invoke(t, r, "files.read", `{"path":"f"}`, &out), capability.CodeFailed, "no file")
	folder = second
	if err := invoke(t, r, "files.read", `{"path":"f"}`, &out); err != nil || out.Text == nil || *out.Text != "second" {
		t.Errorf("after changing the config: %+v, %v", out, err)
	}
}

func TestFilesReadLargeListing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 1001 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := newRegistry(t, builtin.Config{SharedFolder: dir})
	var out fileOutput
	if err := invoke(t, r, "files.read", `{"path":"."}`, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Entries) != 1000 || !out.Truncated {
		t.Errorf("listing has %d entries, truncated %v; want 1000 and true", len(out.Entries), out.Truncated)
	}
}

// TestFilesReadEscapedText: UTF-8 text whose JSON escaping would exceed
// the output limit comes back in base64, which grows it by a third only.
func TestFilesReadEscapedText(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := bytes.Repeat([]byte{0x01}, 200<<10) // each becomes \u0001
	if err := os.WriteFile(filepath.Join(dir, "controls"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, builtin.Config{SharedFolder: dir})
	var out fileOutput
	if err := invoke(t, r, "files.read", `{"path":"controls"}`, &out); err != nil {
		t.Fatal(err)
	}
	if out.Text != nil || out.DataBase64 == nil {
		t.Fatalf("got text %v, base64 %v; want base64", out.Text != nil, out.DataBase64 != nil)
	}
	if got, _ := base64.StdEncoding.DecodeString(*out.DataBase64); !bytes.Equal(got, data) {
		t.Error("base64 does not decode to the file")
	}
}

func TestFilesReadDescribe(t *testing.T) {
	t.Parallel()
	for _, c := range builtin.All(nil) {
		if c.Name != "files.read" {
			continue
		}
		for args, want := range map[string]string{
			`{"path":"notes/todo.txt"}`: "read notes/todo.txt from the shared folder",
			`{"path":"my notes.txt"}`:   `read "my notes.txt" from the shared folder`,
		} {
			if got := c.Describe(json.RawMessage(args)); got != want {
				t.Errorf("Describe(%s) = %q, want %q", args, got, want)
			}
		}
	}
}
