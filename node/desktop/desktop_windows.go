package desktop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf16"
)

// On Windows everything goes through Windows PowerShell 5.1, which every
// Windows 10 and 11 has: a toast for notifications, the .NET clipboard, and
// System.Drawing for the screen.
//
// Scripts are fixed text passed with -EncodedCommand, so no quoting rules
// apply; what the caller gives travels in environment variables or on
// standard input, never inside a script. Text on stdin and stdout is raw
// UTF-8 bytes read and written through the standard streams, not the
// console's code page.

// scriptPrelude makes a script fail on any error with its message on stderr
// and exit status 1, and keeps progress records (which PowerShell would
// write to stderr as CLIXML) out.
const scriptPrelude = `$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
trap { [Console]::Error.WriteLine($_.Exception.Message); exit 1 }
`

// notifyScriptPS shows a toast with PowerShell's application ID (toasts need
// a registered one, and this one is always there), or, where toasts are not
// available, a balloon from a tray icon. The text is set as XML text nodes,
// so it cannot change the toast's XML.
const notifyScriptPS = scriptPrelude + `$title = $env:PALYRA_NOTIFY_TITLE
$body = $env:PALYRA_NOTIFY_BODY
try {
	$null = [Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime]
	$null = [Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument, ContentType = WindowsRuntime]
	$xml = New-Object Windows.Data.Xml.Dom.XmlDocument
	$xml.LoadXml('<toast><visual><binding template="ToastGeneric"><text/><text/></binding></visual></toast>')
	$texts = $xml.GetElementsByTagName('text')
	$null = $texts.Item(0).AppendChild($xml.CreateTextNode($title))
	$null = $texts.Item(1).AppendChild($xml.CreateTextNode($body))
	$toast = New-Object Windows.UI.Notifications.ToastNotification $xml
	$app = '{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe'
	[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier($app).Show($toast)
} catch {
	# The balloon lives as long as its tray icon, that is this process:
	# it stays for the few seconds the balloon is shown.
	Add-Type -AssemblyName System.Windows.Forms, System.Drawing
	$icon = New-Object System.Windows.Forms.NotifyIcon
	$icon.Icon = [System.Drawing.SystemIcons]::Information
	$icon.Text = 'Palyra'
	$icon.BalloonTipTitle = $title
	# An empty balloon text is refused.
	$icon.BalloonTipText = $(if ($body) { $body } else { ' ' })
	$icon.Visible = $true
	$icon.ShowBalloonTip(5000)
	Start-Sleep -Seconds 5
	$icon.Dispose()
}
`

// readClipboardScript writes the clipboard's text to stdout as UTF-8.
const readClipboardScript = scriptPrelude + `Add-Type -AssemblyName System.Windows.Forms
$text = [System.Windows.Forms.Clipboard]::GetText()
$out = [Console]::OpenStandardOutput()
$bytes = (New-Object System.Text.UTF8Encoding $false).GetBytes($text)
$out.Write($bytes, 0, $bytes.Length)
$out.Flush()
`

// writeClipboardScript puts stdin, read as UTF-8, on the clipboard. SetText
// refuses "", so that empties the clipboard instead; it retries for a
// second while another program holds the clipboard open.
const writeClipboardScript = scriptPrelude + `Add-Type -AssemblyName System.Windows.Forms
$in = [Console]::OpenStandardInput()
$buf = New-Object System.IO.MemoryStream
$in.CopyTo($buf)
$text = (New-Object System.Text.UTF8Encoding $false).GetString($buf.ToArray())
if ($text.Length -eq 0) {
	[System.Windows.Forms.Clipboard]::Clear()
} else {
	[System.Windows.Forms.Clipboard]::SetText($text)
}
`

// captureScreenScript saves the primary display as a PNG to the file named
// in PALYRA_SCREEN_FILE. The process is made DPI-aware first; otherwise a
// scaled display reports, and captures, only part of its real pixels.
const captureScreenScript = scriptPrelude + `try {
	Add-Type -Namespace PalyraDesktop -Name Dpi -MemberDefinition '[DllImport("user32.dll")] public static extern bool SetProcessDPIAware();'
	$null = [PalyraDesktop.Dpi]::SetProcessDPIAware()
} catch {}
Add-Type -AssemblyName System.Windows.Forms, System.Drawing
$bounds = [System.Windows.Forms.Screen]::PrimaryScreen.Bounds
$bmp = New-Object System.Drawing.Bitmap $bounds.Width, $bounds.Height
$g = [System.Drawing.Graphics]::FromImage($bmp)
try {
	$g.CopyFromScreen($bounds.Location, [System.Drawing.Point]::Empty, $bounds.Size)
	$bmp.Save($env:PALYRA_SCREEN_FILE, [System.Drawing.Imaging.ImageFormat]::Png)
} finally {
	$g.Dispose()
	$bmp.Dispose()
}
`

// powershell runs a script with Windows PowerShell, found under the system
// directory rather than on PATH, in a hidden window: a caller without a
// console would otherwise flash one.
func powershell(ctx context.Context, script string, env []string, stdin *strings.Reader) ([]byte, error) {
	exe := filepath.Join(systemRoot(), "System32", "WindowsPowerShell", "v1.0", "powershell.exe")
	r := toolRun{
		path: exe,
		args: []string{"-NoLogo", "-NoProfile", "-NonInteractive", "-Sta",
			"-ExecutionPolicy", "Bypass", "-EncodedCommand", encodeCommand(script)},
		env: append(os.Environ(), env...),
		sysProcAttr: &syscall.SysProcAttr{
			HideWindow:    true,
			CreationFlags: 0x08000000, // CREATE_NO_WINDOW
		},
	}
	if stdin != nil {
		r.stdin = stdin
	}
	return r.run(ctx)
}

func systemRoot() string {
	if root := os.Getenv("SystemRoot"); root != "" {
		return root
	}
	return `C:\Windows`
}

// encodeCommand encodes a script for -EncodedCommand: base64 of UTF-16LE.
func encodeCommand(script string) string {
	u := utf16.Encode([]rune(script))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func notify(ctx context.Context, title, body string) error {
	_, err := powershell(ctx, notifyScriptPS, []string{
		"PALYRA_NOTIFY_TITLE=" + envValue(title),
		"PALYRA_NOTIFY_BODY=" + envValue(body),
	}, nil)
	if err != nil {
		return fmt.Errorf("desktop notifications: %w", err)
	}
	return nil
}

// envValue makes s fit in an environment variable: it ends at a NUL.
func envValue(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

func readClipboard(ctx context.Context) (string, error) {
	out, err := powershell(ctx, readClipboardScript, nil, nil)
	if err != nil {
		return "", fmt.Errorf("clipboard: reading the clipboard: %w", err)
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), nil
}

func writeClipboard(ctx context.Context, text string) error {
	if _, err := powershell(ctx, writeClipboardScript, nil, strings.NewReader(text)); err != nil {
		return fmt.Errorf("clipboard: writing the clipboard: %w", err)
	}
	return nil
}

func captureScreen(ctx context.Context) (image.Image, error) {
	f, err := os.CreateTemp("", "palyra-screen-*.png")
	if err != nil {
		return nil, fmt.Errorf("screen capture: creating a file for the image: %w", err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)

	if _, err := powershell(ctx, captureScreenScript, []string{"PALYRA_SCREEN_FILE=" + name}, nil); err != nil {
		if strings.Contains(stderrOf(err), "handle is invalid") {
			// CopyFromScreen without an interactive desktop: a
			// service, or a locked or disconnected session.
			return nil, fmt.Errorf("screen capture: no interactive desktop to capture: %w: %w", err, ErrUnsupported)
		}
		return nil, fmt.Errorf("screen capture: %w", err)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("screen capture: reading the image: %w", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("screen capture: decoding the PNG: %w", err)
	}
	return img, nil
}
