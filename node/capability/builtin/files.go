package builtin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/palyra/palyra-go/node/capability"
)

// maxDirEntries bounds a directory listing.
const maxDirEntries = 1000

type fileListing struct {
	Path      string     `json:"path"`
	Entries   []dirEntry `json:"entries"`
	Truncated bool       `json:"truncated,omitempty"`
}

type dirEntry struct {
	Name string `json:"name"`
	Dir  bool   `json:"dir"`
	Size int64  `json:"size"`
}

// fileContent holds a file's text when it is UTF-8, its bytes in base64
// otherwise.
type fileContent struct {
	Path       string  `json:"path"`
	Size       int64   `json:"size"`
	Text       *string `json:"text,omitempty"`
	DataBase64 string  `json:"data_base64,omitempty"`
}

// filesReadArgs are files.read's arguments.
type filesReadArgs struct {
	Path string `json:"path"`
}

func filesRead(cfg func() Config) capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:        "files.read",
			Description: "Read a file, or list a folder, inside the one folder this computer shares. Text comes back as text, other files in base64.",
			Label:       "Read the shared folder",
			Schema: json.RawMessage(`{
				"type": "object",
				"properties": {
					"path": {"type": "string", "maxLength": 4096, "description": "Path relative to the shared folder, with / between names; \"\" or \".\" lists the folder itself."}
				},
				"required": ["path"],
				"additionalProperties": false
			}`),
			Privacy:        capability.PrivacyPersonal,
			DefaultEnabled: false,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			var args filesReadArgs
			if err := decodeArgs(call.Args, &args); err != nil {
				return nil, err
			}
			return readShared(cfg(), args.Path)
		},
		Describe: func(raw json.RawMessage) string {
			var args filesReadArgs
			_ = decodeArgs(raw, &args)
			return fmt.Sprintf("read %s from the shared folder", quoteIfNeeded(args.Path))
		},
	}
}

// readShared reads path inside cfg.SharedFolder. The folder is opened as
// an os.Root, which refuses any path that leaves it: "..", absolute
// paths, and symlinks (to files or folders) that point outside.
func readShared(cfg Config, path string) (json.RawMessage, error) {
	if cfg.SharedFolder == "" {
		return nil, capability.NewError(capability.CodeNotAllowed, "no shared folder is configured on this node")
	}
	rel, err := sharedPath(path)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(cfg.SharedFolder)
	if err != nil {
		return nil, fmt.Errorf("opening the shared folder %s: %w", cfg.SharedFolder, err)
	}
	defer root.Close()

	// Stat before opening: opening a FIFO would block until someone
	// writes to it, and devices are not files to share.
	info, err := root.Stat(rel)
	if err != nil {
		return nil, sharedError(path, err)
	}
	switch {
	case info.IsDir():
		return listShared(root, rel)
	case !info.Mode().IsRegular():
		return nil, capability.NewError(capability.CodeNotAllowed, "%q is not a regular file or folder", path)
	case info.Size() > cfg.FileMaxSize:
		return nil, tooLarge(path, info.Size(), cfg.FileMaxSize)
	}

	f, err := root.Open(rel)
	if err != nil {
		return nil, sharedError(path, err)
	}
	defer f.Close()
	// Read one byte past the limit: the file may have grown since Stat.
	data, err := io.ReadAll(io.LimitReader(f, cfg.FileMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %q from the shared folder: %w", path, err)
	}
	if int64(len(data)) > cfg.FileMaxSize {
		return nil, tooLarge(path, int64(len(data)), cfg.FileMaxSize)
	}

	out := fileContent{Path: filepath.ToSlash(rel), Size: int64(len(data))}
	if utf8.Valid(data) {
		text := string(data)
		out.Text = &text
		enc, err := marshal(out)
		// Escaping can make text several times larger (control
		// characters become \u00XX); base64 grows by a third at most.
		if err != nil || len(enc) <= capability.MaxOutputSize {
			return enc, err
		}
		out.Text = nil
	}
	out.DataBase64 = base64.StdEncoding.EncodeToString(data)
	return marshal(out)
}

// sharedPath checks a requested path and returns it in the form os.Root
// takes. Paths that are plainly outside are refused here, with the same
// message os.Root's refusals get.
func sharedPath(path string) (string, error) {
	if strings.ContainsRune(path, 0) {
		return "", capability.NewError(capability.CodeInvalidArgs, "argument \"path\": must not contain NUL characters")
	}
	if path == "" || path == "." {
		return ".", nil
	}
	rel := filepath.Clean(filepath.FromSlash(path))
	if filepath.IsAbs(path) || strings.HasPrefix(path, "/") || strings.HasPrefix(path, `\`) || filepath.VolumeName(rel) != "" || !filepath.IsLocal(rel) {
		return "", outsideError(path)
	}
	return rel, nil
}

func listShared(root *os.Root, rel string) (json.RawMessage, error) {
	dir, err := root.Open(rel)
	if err != nil {
		return nil, sharedError(rel, err)
	}
	defer dir.Close()
	// One more than the bound tells whether there are more.
	entries, err := dir.ReadDir(maxDirEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("listing %q in the shared folder: %w", rel, err)
	}
	out := fileListing{Path: filepath.ToSlash(rel), Entries: []dirEntry{}}
	if len(entries) > maxDirEntries {
		entries, out.Truncated = entries[:maxDirEntries], true
	}
	for _, e := range entries {
		de := dirEntry{Name: e.Name(), Dir: e.IsDir()}
		info, err := e.Info() // Lstat
		if err == nil && info.Mode()&fs.ModeSymlink != 0 {
			// Describe a link by what it points to, as reading it would;
			// one that leads outside (or nowhere) stays a plain entry.
			if target, err := root.Stat(filepath.Join(rel, e.Name())); err == nil {
				info, de.Dir = target, target.IsDir()
			}
		}
		if err == nil && info.Mode().IsRegular() {
			de.Size = info.Size()
		}
		out.Entries = append(out.Entries, de)
	}
	slices.SortFunc(out.Entries, func(a, b dirEntry) int { return strings.Compare(a.Name, b.Name) })
	return marshal(out)
}

// errPathEscapes is the text of os.Root's refusal of a path leaving the
// root; the error itself is not exported.
const errPathEscapes = "path escapes from parent"

// sharedError turns an error from the os.Root into one for people.
func sharedError(path string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe) && pe.Err.Error() == errPathEscapes:
		return outsideError(path)
	case errors.Is(err, fs.ErrNotExist):
		return capability.NewError(capability.CodeFailed, "no file %q in the shared folder", path)
	case errors.Is(err, fs.ErrPermission):
		return capability.NewError(capability.CodeNotAllowed, "the node may not read %q in the shared folder (permission denied)", path)
	}
	return fmt.Errorf("reading %q from the shared folder: %w", path, err)
}

func outsideError(path string) error {
	return capability.NewError(capability.CodeNotAllowed, "path %q is outside the shared folder", path)
}

func tooLarge(path string, size, limit int64) error {
	return capability.NewError(capability.CodeOutputTooLarge, "%q is %s, more than the limit of %s for files.read", path, sizeText(size), sizeText(limit))
}
