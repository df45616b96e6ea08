package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/desktop"
)

// notifyArgs are system.notify's arguments.
type notifyArgs struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

// clipboardWriteArgs are clipboard.write's arguments.
type clipboardWriteArgs struct {
	Text string `json:"text"`
}

func systemNotify() capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:        "system.notify",
			Description: "Show a desktop notification on this computer.",
			Label:       "Show notifications",
			Schema: json.RawMessage(`{
				"type": "object",
				"properties": {
					"title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "The notification's title."},
					"body": {"type": "string", "maxLength": 2000, "description": "The notification's text."}
				},
				"required": ["title"],
				"additionalProperties": false
			}`),
			Privacy:        capability.PrivacyLow,
			DefaultEnabled: true,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			var args notifyArgs
			if err := decodeArgs(call.Args, &args); err != nil {
				return nil, err
			}
			if err := desktop.Notify(ctx, args.Title, args.Body); err != nil {
				return nil, desktopError("showing the notification", err)
			}
			return marshal(struct {
				Shown bool `json:"shown"`
			}{true})
		},
		Describe: func(raw json.RawMessage) string {
			var args notifyArgs
			_ = decodeArgs(raw, &args)
			return fmt.Sprintf("show a notification titled %q", args.Title)
		},
	}
}

func clipboardRead() capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:           "clipboard.read",
			Description:    "Read the text on this computer's clipboard.",
			Label:          "Read the clipboard",
			Schema:         json.RawMessage(noArgs),
			Privacy:        capability.PrivacyPersonal,
			DefaultEnabled: false,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			text, err := desktop.ReadClipboard(ctx)
			if err != nil {
				return nil, desktopError("reading the clipboard", err)
			}
			return marshal(struct {
				Text string `json:"text"`
			}{text})
		},
	}
}

func clipboardWrite() capability.Capability {
	return capability.Capability{
		Spec: capability.Spec{
			Name:        "clipboard.write",
			Description: "Replace the text on this computer's clipboard.",
			Label:       "Change the clipboard",
			Schema: json.RawMessage(`{
				"type": "object",
				"properties": {
					"text": {"type": "string", "maxLength": 65536, "description": "The text to put on the clipboard."}
				},
				"required": ["text"],
				"additionalProperties": false
			}`),
			Privacy:        capability.PrivacyPersonal,
			DefaultEnabled: false,
			DefaultConsent: capability.ConsentAllow,
		},
		Run: func(ctx context.Context, call capability.Call) (json.RawMessage, error) {
			var args clipboardWriteArgs
			if err := decodeArgs(call.Args, &args); err != nil {
				return nil, err
			}
			if err := desktop.WriteClipboard(ctx, args.Text); err != nil {
				return nil, desktopError("writing the clipboard", err)
			}
			return marshal(struct {
				Written bool `json:"written"`
			}{true})
		},
		Describe: func(raw json.RawMessage) string {
			var args clipboardWriteArgs
			_ = decodeArgs(raw, &args)
			return fmt.Sprintf("put %d characters of text on the clipboard", len([]rune(args.Text)))
		},
	}
}

// desktopError says what failed; a desktop that cannot do it at all is
// CodeUnsupported, so the caller can tell "not here" from "went wrong".
func desktopError(doing string, err error) error {
	if errors.Is(err, desktop.ErrUnsupported) {
		return capability.NewError(capability.CodeUnsupported, "%s: %v", doing, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}
