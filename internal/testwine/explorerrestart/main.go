//go:build windows

// Command explorerrestart does to a running tray program, under Wine, what
// a restart of Windows' Explorer does to it: "forget" drops the program's
// notification icon from the tray, as a new Explorer starts without the
// old one's icons, and "announce" broadcasts the TaskbarCreated message
// with which Explorer tells every program to add its icon again. Wine's
// own explorer cannot be restarted into that: it never broadcasts the
// message. Only the desktop test under Wine runs it.
//
//	explorerrestart forget WINDOW-CLASS ICON-ID
//	explorerrestart announce
package main

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	user32                = windows.NewLazySystemDLL("user32.dll")
	shell32               = windows.NewLazySystemDLL("shell32.dll")
	findWindow            = user32.NewProc("FindWindowW")
	postMessage           = user32.NewProc("PostMessageW")
	registerWindowMessage = user32.NewProc("RegisterWindowMessageW")
	shellNotifyIcon       = shell32.NewProc("Shell_NotifyIconW")
)

const (
	nimDelete     = 2
	hwndBroadcast = 0xffff
)

// notifyIconData is NOTIFYICONDATAW as Windows Vista and later define it.
type notifyIconData struct {
	Size            uint32
	Wnd             windows.Handle
	ID              uint32
	Flags           uint32
	CallbackMessage uint32
	Icon            windows.Handle
	Tip             [128]uint16
	State           uint32
	StateMask       uint32
	Info            [256]uint16
	TimeoutVersion  uint32
	InfoTitle       [64]uint16
	InfoFlags       uint32
	GUIDItem        windows.GUID
	BalloonIcon     windows.Handle
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "explorerrestart:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 3 && args[0] == "forget":
		id, err := strconv.ParseUint(args[2], 10, 32)
		if err != nil {
			return fmt.Errorf("icon ID %q: %w", args[2], err)
		}
		return forget(args[1], uint32(id))
	case len(args) == 1 && args[0] == "announce":
		return announce()
	}
	return fmt.Errorf("usage: explorerrestart forget WINDOW-CLASS ICON-ID | announce")
}

func forget(class string, id uint32) error {
	name, err := windows.UTF16PtrFromString(class)
	if err != nil {
		return err
	}
	hwnd, _, err := findWindow.Call(uintptr(unsafe.Pointer(name)), 0)
	if hwnd == 0 {
		return fmt.Errorf("no window of class %s: %w", class, err)
	}
	nid := notifyIconData{Wnd: windows.Handle(hwnd), ID: id}
	nid.Size = uint32(unsafe.Sizeof(nid))
	if ok, _, err := shellNotifyIcon.Call(nimDelete, uintptr(unsafe.Pointer(&nid))); ok == 0 {
		return fmt.Errorf("removing icon %d of window %#x from the tray: %w", id, hwnd, err)
	}
	return nil
}

func announce() error {
	name, err := windows.UTF16PtrFromString("TaskbarCreated")
	if err != nil {
		return err
	}
	msg, _, err := registerWindowMessage.Call(uintptr(unsafe.Pointer(name)))
	if msg == 0 {
		return fmt.Errorf("registering TaskbarCreated: %w", err)
	}
	if ok, _, err := postMessage.Call(hwndBroadcast, msg, 0, 0); ok == 0 {
		return fmt.Errorf("broadcasting TaskbarCreated: %w", err)
	}
	return nil
}
