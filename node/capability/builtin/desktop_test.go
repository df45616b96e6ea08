package builtin_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/capability/builtin"
)

// The desktop package is tested by its own author; these tests check the
// wrapping: schemas, output shapes, and that a desktop that cannot do
// something says so as CodeUnsupported. They pass whether or not this
// machine's desktop works.

// wantUnsupported accepts success (checked by the caller) or
// CodeUnsupported with a message; false means the call worked.
func wantUnsupported(t *testing.T, err error, doing string) bool {
	t.Helper()
	if err == nil {
		return false
	}
	var e *capability.Error
	if !errors.As(err, &e) || e.Code != capability.CodeUnsupported {
		t.Fatalf("error = %v, want success or %s", err, capability.CodeUnsupported)
	}
	if !strings.HasPrefix(e.Message, doing+": ") || len(e.Message) <= len(doing)+2 {
		t.Errorf("message %q does not say what failed and why", e.Message)
	}
	return true
}

func TestSystemNotify(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, builtin.Config{})
	var out map[string]any
	err := invoke(t, r, "system.notify", `{"title":"palyra test","body":"a notification from the builtin tests"}`, &out)
	if !wantUnsupported(t, err, "showing the notification") && out["shown"] != true {
		t.Errorf("system.notify = %v, want shown true", out)
	}
	for _, tc := range []struct{ args, want string }{
		{`{"body":"b"}`, `missing argument "title"`},
		{`{"title":""}`, `argument "title": must be at least 1 character long`},
		{`{"title":"` + strings.Repeat("t", 201) + `"}`, `argument "title": must be at most 200 characters long`},
		{`{"title":"t","body":"` + strings.Repeat("b", 2001) + `"}`, `argument "body": must be at most 2000 characters long`},
		{`{"title":"t","urgency":"high"}`, `unknown argument "urgency"`},
	} {
		wantError(t, invoke(t, r, "system.notify", tc.args, &out), capability.CodeInvalidArgs, tc.want)
	}
}

func TestClipboard(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, builtin.Config{})
	var read struct {
		Text *string `json:"text"`
	}
	err := invoke(t, r, "clipboard.read", `{}`, &read)
	if wantUnsupported(t, err, "reading the clipboard") {
		var written map[string]any
		wantUnsupported(t, invoke(t, r, "clipboard.write", `{"text":"palyra test"}`, &written), "writing the clipboard")
	} else {
		if read.Text == nil {
			t.Fatal("clipboard.read output has no text")
		}
		// A working clipboard: write, read back, and put the owner's text
		// back.
		old := *read.Text
		var written map[string]any
		if err := invoke(t, r, "clipboard.write", `{"text":"palyra test ✓"}`, &written); err != nil || written["written"] != true {
			t.Fatalf("clipboard.write = %v, %v", written, err)
		}
		if err := invoke(t, r, "clipboard.read", `{}`, &read); err != nil || read.Text == nil || *read.Text != "palyra test ✓" {
			t.Errorf("clipboard.read after write = %v, %v", read.Text, err)
		}
		restore, _ := jsonString(old)
		if err := invoke(t, r, "clipboard.write", `{"text":`+restore+`}`, &written); err != nil {
			t.Errorf("restoring the clipboard: %v", err)
		}
	}

	var out map[string]any
	wantError(t, invoke(t, r, "clipboard.read", `{"format":"html"}`, &out), capability.CodeInvalidArgs, `unknown argument "format"`)
	wantError(t, invoke(t, r, "clipboard.write", `{}`, &out), capability.CodeInvalidArgs, `missing argument "text"`)
	wantError(t, invoke(t, r, "clipboard.write", `{"text":5}`, &out), capability.CodeInvalidArgs, `argument "text": must be a string`)
	wantError(t, invoke(t, r, "clipboard.write", `{"text":"`+strings.Repeat("x", 65537)+`"}`, &out), capability.CodeInvalidArgs)
}

func TestScreenCapture(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, builtin.Config{})
	var shot struct {
		Format     string `json:"format"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		DataBase64 string `json:"data_base64"`
	}
	err := invoke(t, r, "screen.capture", `{"format":"png","max_width":640}`, &shot)
	if !wantUnsupported(t, err, "capturing the screen") {
		data, err := base64.StdEncoding.DecodeString(shot.DataBase64)
		if err != nil || len(data) == 0 || shot.Width <= 0 || shot.Width > 640 || shot.Height <= 0 || (shot.Format != "png" && shot.Format != "jpeg") {
			t.Errorf("screen.capture = %s %dx%d with %d bytes (%v)", shot.Format, shot.Width, shot.Height, len(data), err)
		}
	}
	for _, tc := range []struct{ args, want string }{
		{`{"format":"gif"}`, `argument "format": must be one of "png", "jpeg"`},
		{`{"max_width":10}`, `argument "max_width": must be at least 64`},
		{`{"max_width":7681}`, `argument "max_width": must be at most 7680`},
		{`{"max_width":800.5}`, `argument "max_width": must be an integer`},
		{`{"display":2}`, `unknown argument "display"`},
	} {
		wantError(t, invoke(t, r, "screen.capture", tc.args, &shot), capability.CodeInvalidArgs, tc.want)
	}
}

func TestDesktopDescribe(t *testing.T) {
	t.Parallel()
	caps := map[string]capability.Capability{}
	for _, c := range builtin.All(nil) {
		caps[c.Name] = c
	}
	for _, tc := range []struct{ name, args, want string }{
		{"screen.capture", `{}`, "capture the screen (as jpeg, at most 1920 pixels wide)"},
		{"screen.capture", `{"format":"png","max_width":800}`, "capture the screen (as png, at most 800 pixels wide)"},
		{"system.notify", `{"title":"Hi"}`, `show a notification titled "Hi"`},
		{"clipboard.write", `{"text":"héllo"}`, "put 5 characters of text on the clipboard"},
	} {
		if got := caps[tc.name].Describe([]byte(tc.args)); got != tc.want {
			t.Errorf("%s Describe(%s) = %q, want %q", tc.name, tc.args, got, tc.want)
		}
	}
}

func jsonString(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}
